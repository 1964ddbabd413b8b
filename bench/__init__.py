"""Benchmarks: each prints a table and writes JSON; none of them is a timed test."""
