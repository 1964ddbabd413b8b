"""Ingest's doors, one module each; ``services.ingest.app`` includes them."""
