"""Benchmarks that run the real pipeline on local services (not part of the installed package)."""
