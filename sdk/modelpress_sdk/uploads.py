"""Direct uploads: the model's bytes go to storage (or a presigned-like URL of the API) by PUT,
then POST /v1/models registers them, so the API never streams a large model itself."""

from __future__ import annotations

from pathlib import Path

from modelpress_sdk.errors import ApiError
from modelpress_sdk.transport import Progress, Transport
from modelpress_sdk.types import Model, UploadTicket, parse


def upload_direct(
    transport: Transport, path: Path, name: str | None, progress: Progress | None
) -> Model:
    """POST /v1/uploads, PUT the bytes (in parts when told), complete, register the model."""
    size = path.stat().st_size
    ticket = parse(
        UploadTicket,
        transport.json(
            "POST",
            "/v1/uploads",
            json={"filename": path.name, "size_bytes": size},
            idempotent_create=True,
        ),
    )
    if ticket.parts:
        _put_parts(transport, ticket, path, size, progress)
    elif ticket.url:
        transport.put_file(ticket.url, path, ticket.headers, progress=progress, total=size)
    else:
        raise ApiError(201, "bad_response", "POST /v1/uploads answered without a url or parts")
    body = {"upload_id": ticket.upload_id, **({"name": name} if name else {})}
    return parse(Model, transport.json("POST", "/v1/models", json=body, idempotent_create=True))


def _put_parts(
    transport: Transport, ticket: UploadTicket, path: Path, size: int, progress: Progress | None
) -> None:
    """PUT each part's byte range to its URL, then POST the parts' ETags to complete."""
    done: list[dict[str, object]] = []
    offset = 0
    for part in sorted(ticket.parts, key=lambda p: p.part_number):
        resp = transport.put_file(
            part.url,
            path,
            ticket.headers,
            offset=offset,
            length=part.size_bytes,
            progress=progress,
            sent_before=offset,
            total=size,
        )
        etag = resp.headers.get("ETag")
        if not etag:
            raise ApiError(resp.status_code, "bad_response", f"part {part.part_number}: no ETag")
        done.append({"part_number": part.part_number, "etag": etag})
        offset += part.size_bytes
    if offset != size:
        raise ApiError(201, "bad_response", f"the parts cover {offset} of {size} bytes")
    transport.json("POST", f"/v1/uploads/{ticket.upload_id}/complete", json={"parts": done})
