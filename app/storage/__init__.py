"""Object storage for model files behind one small interface, chosen by URL scheme."""

from functools import lru_cache
from urllib.parse import urlparse

from app.settings import get_settings
from app.storage.base import Storage, StorageError, StoredObject
from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage

__all__ = [
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StorageError",
    "StoredObject",
    "get_storage",
    "storage_for_url",
]


def storage_for_url(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    s3_max_attempts: int = 5,
) -> Storage:
    """Build the backend a URL names: file:///path or s3://bucket/prefix."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(parsed.path)
    if parsed.scheme == "s3":
        return S3Storage(
            bucket=parsed.netloc,
            prefix=parsed.path.lstrip("/"),
            endpoint_url=endpoint_url,
            region=region,
            max_attempts=s3_max_attempts,
        )
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} (use file:// or s3://)")


@lru_cache
def get_storage() -> Storage:
    settings = get_settings()
    return storage_for_url(
        settings.storage_url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        s3_max_attempts=settings.s3_max_attempts,
    )
