"""Benchmarks: each script prints its numbers; docs/BENCHMARKS.md records them with the command."""
