"""Benchmarks: run as modules from the repository root, e.g. `python -m ktrdr_assets.benchmarks.analytics_overhead`."""
