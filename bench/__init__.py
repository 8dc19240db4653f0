"""Benchmarks of the facade against the sandbox legacy core: `python bench/facade.py` runs them all."""
