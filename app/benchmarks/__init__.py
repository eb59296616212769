"""Benchmarks: timing and evaluating models, on their own queue, one at a time per worker."""
