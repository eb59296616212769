"""Uploads: multipart request bodies streamed to disk, and direct uploads to storage."""
