"""Receive a multipart upload as a stream: to a temp file, hashed and size-capped on the way."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import Depends
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from app.deps import SettingsDep, TenantDep
from app.errors import InvalidRequestProblem, ModelTooLargeProblem, ProblemError
from app.settings import Settings

MAX_FIELD_BYTES = 64 * 1024
# Room for the multipart envelope (boundaries, part headers, small fields) around the file.
ENVELOPE_ALLOWANCE = 1024 * 1024


class UnsupportedMediaTypeProblem(ProblemError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


@dataclass
class ReceivedFile:
    path: Path
    filename: str
    size_bytes: int
    sha256: str


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: ReceivedFile | None = None

    def discard(self) -> None:
        if self.file is not None:
            self.file.path.unlink(missing_ok=True)


class _PartSink:
    """Collects one multipart part: headers, then bytes to a file (the upload) or memory."""

    def __init__(
        self,
        form: ReceivedForm,
        file_field: str,
        max_file_bytes: int,
        tmp_dir: Path,
        too_large: type[ProblemError],
    ):
        self.form, self.file_field, self.max_file_bytes, self.tmp_dir = (
            form,
            file_field,
            max_file_bytes,
            tmp_dir,
        )
        self.too_large = too_large
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._filename: str | None = None
        self._buffer = bytearray()
        self._out: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._size = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers, self._buffer, self._filename, self._out = {}, bytearray(), None, None

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        self._filename = (
            raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        )
        if self._name == self.file_field and self._filename is not None:
            if self.form.file is not None:
                raise InvalidRequestProblem(f"{self.file_field}: send exactly one file")
            fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-", suffix=".part")
            self._out = open(fd, "wb")  # noqa: SIM115 - closed in _part_end or by the caller
            self.form.file = ReceivedFile(Path(tmp), Path(self._filename).name, 0, "")
            self._hash, self._size = hashlib.sha256(), 0

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._out is not None:
            self._size += len(chunk)
            if self._size > self.max_file_bytes:
                raise self.too_large(
                    f"the upload exceeds the limit of {self.max_file_bytes} bytes",
                    limit_bytes=self.max_file_bytes,
                )
            self._hash.update(chunk)
            self._out.write(chunk)
            return
        self._buffer += chunk
        if len(self._buffer) > MAX_FIELD_BYTES:
            raise InvalidRequestProblem(
                f"{self._name}: form field longer than {MAX_FIELD_BYTES} bytes"
            )

    def _part_end(self) -> None:
        if self._out is not None and self.form.file is not None:
            self._out.close()
            self._out = None
            self.form.file.size_bytes = self._size
            self.form.file.sha256 = self._hash.hexdigest()
        elif self._name:
            self.form.fields[self._name] = self._buffer.decode("utf-8", "replace")

    def close(self) -> None:
        """Close the temp file, even one whose last write failed (a full disk fails it again)."""
        if self._out is not None:
            out, self._out = self._out, None
            with contextlib.suppress(OSError):
                out.close()


MAX_NAME_LENGTH = 255


def display_name(requested: str | None, filename: str, fallback: str) -> str:
    """The name to store: the one asked for, else the file's stem; any Unicode, no controls."""
    name = (requested or "").strip() or Path(filename).stem or fallback
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRequestProblem("name: control characters are not allowed")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequestProblem(f"name: at most {MAX_NAME_LENGTH} characters")
    return name


def upload_tmp_dir(settings: Settings) -> Path:
    """Where uploads land while they are checked: the data folder when embedded, else /tmp."""
    tmp_dir = settings.data_dir / "tmp" if settings.is_embedded else Path(tempfile.gettempdir())
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir


async def receive_multipart(
    request: Request,
    *,
    file_field: str,
    max_file_bytes: int,
    tmp_dir: Path,
    too_large: type[ProblemError] = ModelTooLargeProblem,
) -> ReceivedForm:
    """Parse the request body as it arrives; the file never sits whole in memory."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaTypeProblem(
            "send the model as multipart/form-data with a 'file' part"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_file_bytes + ENVELOPE_ALLOWANCE:
        raise too_large(
            f"the upload exceeds the limit of {max_file_bytes} bytes", limit_bytes=max_file_bytes
        )
    form = ReceivedForm()
    sink = _PartSink(form, file_field, max_file_bytes, tmp_dir, too_large)
    parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        sink.close()
        form.discard()
        raise InvalidRequestProblem(f"malformed multipart body: {exc}") from exc
    except BaseException:
        sink.close()
        form.discard()
        raise
    return form


def upload_openapi(
    file_description: str, json_schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OpenAPI for a streamed multipart upload (FastAPI cannot infer it from a raw request), and
    for the JSON body the endpoint also takes, when it does."""
    doc: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": file_description,
                            },
                            "name": {"type": "string", "maxLength": MAX_NAME_LENGTH},
                        },
                    }
                }
            },
        }
    }
    if json_schema is not None:
        doc["requestBody"]["content"]["application/json"] = {"schema": json_schema}
    return doc


@dataclass
class Upload:
    """What an upload request sends: the `file` part and the optional `name` field."""

    file: ReceivedFile
    name: str | None
    # A direct upload's object in storage holding the same bytes as `file`, moved into place
    # rather than uploaded again.
    staged_key: str | None = None


@contextlib.asynccontextmanager
async def received_upload(
    request: Request,
    settings: Settings,
    *,
    too_large: type[ProblemError],
    empty: type[ProblemError],
) -> AsyncIterator[Upload]:
    """The request's multipart upload, its temp file removed on leaving."""
    form = await receive_multipart(
        request,
        file_field="file",
        max_file_bytes=settings.max_upload_bytes,
        tmp_dir=upload_tmp_dir(settings),
        too_large=too_large,
    )
    try:
        if form.file is None:
            raise InvalidRequestProblem(
                "file: a multipart part named 'file' with a filename is required"
            )
        if form.file.size_bytes == 0 or not form.file.sha256:
            raise empty("the uploaded file is empty or was cut off")
        yield Upload(form.file, form.fields.get("name"))
    finally:
        form.discard()


def receive_upload(*, too_large: type[ProblemError], empty: type[ProblemError]) -> Any:
    """`Annotated[Upload, receive_upload(...)]`: the request's upload, received once the caller's
    tenant is known; its temp file goes when the handler ends.

    An upload over the size limit is `too_large`, an empty or cut-off one `empty`: each resource
    answers with its own problem.
    """

    async def receive(
        request: Request,
        settings: SettingsDep,
        _tenant_id: TenantDep,  # resolved first: a caller without a valid key sends no file
    ) -> AsyncIterator[Upload]:
        async with received_upload(request, settings, too_large=too_large, empty=empty) as upload:
            yield upload

    # scope="function": the temp file goes before the answer is sent, not after.
    return Depends(receive, scope="function")
