"""`.zip` packaging of a model with external data: safe unpacking and packing.

Unpacking trusts nothing in the archive: no absolute or `..` paths, no links, a bounded number of
entries, bytes counted while inflating (never the headers' word for it) and a bounded ratio.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from app.compression.graph.analysis import external_data_files, load_proto

MAX_ENTRIES = 1000
MAX_RATIO = 200  # inflated / compressed; weights rarely compress past 10x
CHUNK = 1024 * 1024


class UnsafeArchiveError(ValueError):
    """The archive could escape its folder or inflate without bound."""


class ArchiveContentError(ValueError):
    """The archive is safe but does not hold exactly one .onnx model."""


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or ".." in path.parts or name.startswith("/"):
        raise UnsafeArchiveError(f"entry {name!r} points outside the archive's folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"entry {name!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(f"entry {name!r} is encrypted")
    return path


def extract_model_archive(archive_path: Path, dest: Path, max_total_bytes: int) -> Path:
    """Unpack into `dest` and return the one .onnx inside; raise on anything unsafe."""
    if not zipfile.is_zipfile(archive_path):
        raise ArchiveContentError("not a zip archive")
    compressed = max(archive_path.stat().st_size, 1)
    with zipfile.ZipFile(archive_path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ENTRIES:
            raise UnsafeArchiveError(f"more than {MAX_ENTRIES} entries")
        paths = [_member_path(m) for m in members]
        models = [p for p in paths if p.suffix == ".onnx"]
        if len(models) != 1:
            raise ArchiveContentError(
                f"the archive must hold exactly one .onnx, found {len(models)}"
            )
        budget = min(max_total_bytes, compressed * MAX_RATIO)
        written = 0
        for member, relative in zip(members, paths, strict=True):
            target = dest.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, target.open("wb") as out:
                while chunk := src.read(CHUNK):
                    written += len(chunk)
                    if written > budget:
                        raise UnsafeArchiveError(
                            f"the archive inflates past {budget} bytes "
                            f"(limit: {MAX_RATIO}x its size, at most {max_total_bytes})"
                        )
                    out.write(chunk)
    return dest.joinpath(*models[0].parts)


def model_files(model_path: Path) -> list[Path]:
    """The model file and every external-data file it references (relative to its folder)."""
    return [model_path, *external_data_files(load_proto(model_path), model_path.parent)]


def pack_model(model_path: Path, archive_path: Path) -> None:
    """Zip a model with its external data (stored, not deflated: weights barely compress)."""
    base = model_path.parent
    with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in model_files(model_path):
            archive.write(path, path.relative_to(base).as_posix())
