"""Benchmarks of the event path: ``python benchmarks/run.py`` (docs/performance.md).

Not part of the installed package.
"""
