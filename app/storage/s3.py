"""S3 or any S3-compatible store (MinIO, moto) through boto3."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import Storage, StorageError, StoredObject

_MISSING = {"404", "NoSuchKey", "NotFound"}
# What a client's wrong part list earns on completion, as opposed to the store failing.
_CLIENT_PART_ERRORS = {
    "InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload", "MalformedXML",
}  # fmt: skip


class S3Storage(Storage):
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str,
        max_attempts: int = 5,
    ) -> None:
        if not bucket:
            raise ValueError("an s3:// storage URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # Standard retry mode backs off on throttling and 5xx; a few attempts, then a clear error.
        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"},
        )
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, path: Path) -> None:
        try:
            # upload_file switches to multipart for large files and streams from disk.
            self.client.upload_file(str(path), self.bucket, self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 upload of {key!r} failed: {exc}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            raise StorageError(f"S3 read of {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 read of {key!r} failed: {exc}") from exc
        return cast(BinaryIO, response["Body"])

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 delete of {key!r} failed: {exc}") from exc

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise StorageError(f"S3 head of {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 head of {key!r} failed: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise StorageError(f"no object under {key!r}")
        return int(head["ContentLength"])

    def presign(
        self, key: str, expires_s: int = 3600, *, content_disposition: str | None = None
    ) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if content_disposition:
            params["ResponseContentDisposition"] = content_disposition
        return cast(
            str,
            self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s),
        )

    def move(self, source: str, target: str) -> None:
        try:
            # A copy inside the store (in parts above boto3's threshold), then the source goes.
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(source)}, self.bucket, self._key(target)
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 copy of {source!r} to {target!r} failed: {exc}") from exc
        self.delete(source)

    def presign_put(self, key: str, expires_s: int, *, content_type: str) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._key(key), "ContentType": content_type}
        return cast(
            str,
            self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s),
        )

    def begin_multipart(self, key: str) -> str:
        try:
            started = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 multipart start of {key!r} failed: {exc}") from exc
        return str(started["UploadId"])

    def presign_part(self, key: str, multipart_id: str, part_number: int, expires_s: int) -> str:
        params = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "UploadId": multipart_id,
            "PartNumber": part_number,
        }
        return cast(
            str,
            self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_s),
        )

    def complete_multipart(self, key: str, multipart_id: str, etags: list[tuple[int, str]]) -> None:
        parts = [{"PartNumber": number, "ETag": etag} for number, etag in etags]
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=multipart_id,
                MultipartUpload={"Parts": parts},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _CLIENT_PART_ERRORS:
                raise ValueError(f"the parts do not complete the upload: {exc}") from exc
            raise StorageError(f"S3 multipart completion of {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 multipart completion of {key!r} failed: {exc}") from exc

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=multipart_id
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise StorageError(f"S3 multipart abort of {key!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 multipart abort of {key!r} failed: {exc}") from exc

    def list_objects(self, prefix: str) -> Iterator[StoredObject]:
        strip = len(self._key(""))
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"][strip:], size=item["Size"], modified=item["LastModified"]
                    )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 listing of {prefix!r} failed: {exc}") from exc

    def abort_stale_multipart(self, older_than: datetime) -> int:
        dropped = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._key("")
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < older_than:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        dropped += 1
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 multipart cleanup failed: {exc}") from exc
        return dropped

    def ping(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 bucket {self.bucket!r} unreachable: {exc}") from exc
