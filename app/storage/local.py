"""A directory on the local disk: the embedded default."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from app.storage.base import Storage, StorageError, StoredObject

# put_file copies into a file named so, then renames it: one left over is an unfinished upload.
PARTIAL_PREFIX = ".upload-"


def _files_under(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                yield path, path.stat()
            except FileNotFoundError:  # removed while we walked
                continue


class LocalStorage(Storage):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        # Keys come from our own code, but a key must never escape the root whatever it holds.
        if not path.is_relative_to(self.root):
            raise StorageError(f"key {key!r} escapes the storage root")
        return path

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy then rename, so a reader never sees a half-written object.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def move(self, source: str, target: str) -> None:
        path = self._path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self._path(source), path)  # one folder tree: a rename, atomic
        except FileNotFoundError as exc:
            raise StorageError(f"no object under {source!r}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"no object under {key!r}") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise StorageError(f"no object under {key!r}") from exc

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        # Keys are paths: only the folder the prefix points into is walked.
        folder = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        for path, stat in _files_under(folder):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix) and not path.name.startswith(PARTIAL_PREFIX):
                modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                yield StoredObject(key=key, size=stat.st_size, modified=modified)

    def abort_stale_multipart(self, older_than: datetime) -> int:
        # The local counterpart of an unfinished upload: a copy that was never renamed.
        dropped = 0
        for path, stat in _files_under(self.root):
            stale = datetime.fromtimestamp(stat.st_mtime, UTC) < older_than
            if path.name.startswith(PARTIAL_PREFIX) and stale:
                path.unlink(missing_ok=True)
                dropped += 1
        return dropped

    def ping(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"storage folder {self.root} is not writable")
