"""The `modelpress` command line: compress, status and serve."""
