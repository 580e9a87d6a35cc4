"""Benchmarks that print tables: run each from the repository root as
`python -m bench.<name>` (`--help` says what it measures). Not part of the product."""
