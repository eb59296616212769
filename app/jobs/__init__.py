"""Compression jobs: create, run (in the worker), report, cancel."""
