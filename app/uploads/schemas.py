"""Request and response shapes of direct uploads."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.uploads.multipart import MAX_NAME_LENGTH


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(
        min_length=1, max_length=255, description="The file's name: `.onnx`, or `.zip`."
    )
    size_bytes: int = Field(gt=0, description="The file's exact size in bytes.")


class UploadPartOut(BaseModel):
    part_number: int
    url: str = Field(description="PUT this part's bytes here; keep the answer's `ETag` header.")
    size_bytes: int = Field(description="Bytes of this part (the last one may be shorter).")


class UploadOut(BaseModel):
    upload_id: str
    method: str = Field(default="PUT", description="Always PUT.")
    url: str | None = Field(
        description="PUT the whole file here with `headers`; null for a multipart upload."
    )
    headers: dict[str, str] = Field(description="Send exactly these headers with the PUT.")
    parts: list[UploadPartOut] = Field(
        description="A multipart upload's parts, in order; empty for a single PUT."
    )
    expires_at: datetime = Field(description="Register it with POST /v1/models before this.")
    max_bytes: int = Field(description="The largest file this server accepts.")


class CompletedPart(BaseModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200, description="The part's PUT answered it.")


class UploadComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[CompletedPart] = Field(min_length=1, max_length=10_000)


class UploadCompleted(BaseModel):
    upload_id: str
    size_bytes: int


class UploadRegistration(BaseModel):
    """POST /v1/models as JSON: a direct upload to register as a model."""

    model_config = ConfigDict(extra="forbid")

    upload_id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
