"""Fixtures of the storage tests."""

from tests.uploads.committed import committed_api, committed_storage  # noqa: F401
