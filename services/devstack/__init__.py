"""The local development stack: the embedded broker and PostgreSQL, ``Stack`` (what ``spendstream
up``, the tests and the benchmarks run), and the evaluation harness that drives it.

It sits on top of the services: nothing under ``services/core`` or a service imports it."""
