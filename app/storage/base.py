"""The storage interface every backend implements."""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024


def iter_stream(stream: BinaryIO) -> Iterator[bytes]:
    """Read an open object in chunks (for HTTP responses), closing it at the end."""
    with stream:
        while chunk := stream.read(CHUNK_SIZE):
            yield chunk


class StorageError(Exception):
    """The backing store failed (unreachable, denied, missing object)."""


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it: its key (without the backend's own prefix)."""

    key: str
    size: int
    modified: datetime


class Storage(ABC):
    """Keys are relative POSIX paths such as `uploads/<id>/model.onnx`."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store the file at `path` under `key`, replacing any object there."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of the object."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size of the object in bytes."""

    def presign(
        self, key: str, expires_s: int = 3600, *, content_disposition: str | None = None
    ) -> str | None:
        """A time-limited URL a client can fetch directly, or None when the backend has none;
        the object is served with `content_disposition` when given."""
        return None

    def download_to(self, key: str, path: Path) -> None:
        """Copy the object to a local file without holding it in memory."""
        with self.open(key) as src, path.open("wb") as dst:
            while chunk := src.read(CHUNK_SIZE):
                dst.write(chunk)

    def move(self, source: str, target: str) -> None:
        """Store the object under `source` under `target` instead (without a round trip through
        this process where the backend can)."""
        with tempfile.TemporaryDirectory(prefix="move-") as tmp:
            local = Path(tmp) / "object"
            self.download_to(source, local)
            self.put_file(target, local)
        self.delete(source)

    def presign_put(self, key: str, expires_s: int, *, content_type: str) -> str | None:
        """A time-limited URL a client can PUT the object's bytes to (with `content_type`), or
        None when the backend has none."""
        return None

    def begin_multipart(self, key: str) -> str:
        """Start a multipart upload to `key`; its id."""
        raise StorageError("this storage has no multipart uploads")

    def presign_part(self, key: str, multipart_id: str, part_number: int, expires_s: int) -> str:
        """A time-limited URL a client can PUT one part of a multipart upload to."""
        raise StorageError("this storage has no multipart uploads")

    def complete_multipart(self, key: str, multipart_id: str, etags: list[tuple[int, str]]) -> None:
        """Join the parts (part number, ETag) into the object under `key`."""
        raise StorageError("this storage has no multipart uploads")

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        """Drop an unfinished multipart upload and its parts; an unknown one is not an error."""
        return None  # no multipart uploads here: nothing to drop

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`, in no particular order."""

    @abstractmethod
    def abort_stale_multipart(self, older_than: datetime) -> int:
        """Drop uploads begun before `older_than` and never finished (a crash mid-upload leaves
        them, unlisted but stored); how many were dropped."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError when the backend cannot be reached."""
