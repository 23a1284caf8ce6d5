"""The S3 lake: `s3://bucket/prefix` on AWS or any S3-compatible server (SeaweedFS, MinIO, Ceph).

Every object write is one PUT, or one multipart upload completed in a single call: both are atomic on
S3, so readers see the old object or the new one, never a part. Uploads and downloads go through
boto3's transfer manager; transient failures (throttling, 5xx, dropped connections, timeouts) are
retried with backoff by botocore's `standard` retry mode, a bounded number of times.

Credentials come only from the standard AWS chain (environment, profile, SSO, instance/task role):
this object never holds or prints them. Nothing touches the network until the first operation, and
the failures a person has to fix (missing bucket, rejected credentials, wrong region, unreachable
endpoint) surface as one `LakeStorageError` line naming the operation, the object, the endpoint and
the bucket.
"""

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from lake_assets.lib.storage.base import CommitConflict, ObjectInfo, Storage

# Total attempts per request unless configured (the lake resource's `max_attempts`). `standard`
# backoff waits at most 0.05, 0.1, 0.2, 0.4 s between attempts (1, 2, 4, 8 s when throttled), so a
# request gives up within ~1 s of backoff (15 s throttled) plus the timeouts of its attempts.
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT = 5  # seconds; a reachable S3 accepts in milliseconds
READ_TIMEOUT = 60  # seconds without a byte before the attempt counts as failed
_DELETE_BATCH = 1000  # the most keys DeleteObjects takes per call

# boto3's part sizes (one PUT below 8 MB, 8 MB parts above; a 32 MB single-PUT threshold measured
# slower on SeaweedFS), but 4 parts in parallel per file instead of 10: publish already uploads 4
# files at a time, so this stays at 16 connections.
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")
_TRANSFER = TransferConfig(
    multipart_threshold=8 * 1024**2,
    multipart_chunksize=8 * 1024**2,
    max_concurrency=4,
    use_threads=True,
)
_MAX_POOL_CONNECTIONS = 20

# What each S3 error code means for the person reading the message.
_REASONS = {
    "NoSuchBucket": "bucket {bucket!r} does not exist (NoSuchBucket)",
    "SignatureDoesNotMatch": "credentials rejected (SignatureDoesNotMatch: the secret key does not belong to the access key); check AWS_SECRET_ACCESS_KEY or the AWS profile",
    "InvalidAccessKeyId": "credentials rejected (InvalidAccessKeyId: the access key is unknown to this endpoint); check AWS_ACCESS_KEY_ID or the AWS profile",
    "ExpiredToken": "credentials expired (ExpiredToken); refresh the session",
    "InvalidToken": "credentials rejected (InvalidToken); check AWS_SESSION_TOKEN",
    "AccessDenied": "access denied (AccessDenied): the credentials lack permission for this bucket or key",
    "AuthorizationHeaderMalformed": "wrong region (AuthorizationHeaderMalformed); set AWS_REGION to the bucket's region",
    "PermanentRedirect": "wrong region or endpoint (PermanentRedirect); set AWS_REGION to the bucket's region",
}


class LakeStorageError(Exception):
    """A storage operation failed for a reason a person must fix: the message says which and where."""


def make_s3_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    profile_name: str | None = None,
    path_style: bool = False,
    max_attempts: int = MAX_ATTEMPTS,
    retry_mode: str = "standard",
    use_ssl: bool = True,
    verify: bool | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
):
    """A boto3 S3 client for the lake. dagster-aws's `construct_s3_client` takes the same settings but
    cannot set what the lake needs besides: path-style addressing (S3-compatible servers behind one
    hostname), connect/read timeouts, a connection pool as wide as the parallel transfers, and the
    retry mode. Credentials left unset come from the standard AWS chain (profile, SSO, role)."""
    config = Config(
        retries={"mode": retry_mode, "total_max_attempts": max_attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=_MAX_POOL_CONNECTIONS,
        s3={"addressing_style": "path"} if path_style else None,
    )
    session = boto3.session.Session(profile_name=profile_name, region_name=region_name)
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        use_ssl=use_ssl,
        verify=verify,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
        config=config,
    )


class S3Storage(Storage):
    """`client`: a boto3 S3 client shared by everything that uses this lake (the lake resource caches
    one); without it, one is made on first use from `client_options` (see `make_s3_client`)."""

    def __init__(self, root: str, *, client=None, spark_s3a: bool = False, **client_options):
        scheme, _, rest = root.partition("://")
        bucket, _, prefix = rest.partition("/")
        if scheme not in ("s3", "s3a") or not bucket:
            raise ValueError(f"not an S3 lake root (expected s3://bucket/prefix): {root!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.spark_s3a = spark_s3a
        self._client = client
        self._client_options = client_options
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage({self.root_uri!r}, endpoint_url={self._endpoint()!r})"

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                self._client = make_s3_client(**self._client_options)
            return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    # --- Storage ------------------------------------------------------------------------------

    def content_md5(self, obj: ObjectInfo) -> str | None:
        # A one-part upload's ETag is its MD5; a multipart one's is "<md5 of the parts' md5s>-<parts>".
        return obj.etag if _MD5_ETAG.fullmatch(obj.etag) else None

    def put_file(self, local_path: Path, key: str) -> None:
        with self._errors("upload", key):
            self.client.upload_file(str(local_path), self.bucket, self._key(key), Config=_TRANSFER)

    def put_bytes(self, data: bytes, key: str) -> None:
        with self._errors("put", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_bytes(self, key: str) -> bytes | None:
        found = self.get_with_etag(key)
        return None if found is None else found[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        with self._errors("get", key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as error:
                if _code(error) == "NoSuchKey":
                    return None
                raise
            return response["Body"].read(), response["ETag"].strip('"')

    def put_bytes_if(self, data: bytes, key: str, *, expected_etag: str | None) -> str:
        """S3 conditional writes (AWS since 2024; SeaweedFS, MinIO): `If-None-Match: *` creates only a
        new key, `If-Match: <etag>` replaces only that version; the server decides, atomically.

        A 412 answers a request that was not applied, unless botocore had already retried it: then
        the first attempt may have been applied with its answer lost, so this raises
        `LakeStorageError` (outcome unknown) rather than `CommitConflict` (definitely not written)."""
        condition = {"IfNoneMatch": "*"} if expected_etag is None else {"IfMatch": f'"{expected_etag}"'}
        lost = None
        with self._errors("conditional put", key):
            try:
                response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
            except ClientError as error:
                if not _is_precondition_failure(error, expected_etag):
                    raise
                lost = error
        if lost is None:
            return response["ETag"].strip('"')
        where = f"s3://{self.bucket}/{self._key(key)} at {self._endpoint()}"
        if lost.response.get("ResponseMetadata", {}).get("RetryAttempts", 0):
            raise LakeStorageError(
                f"S3 conditional put of {where}: {_code(lost)} after a retried attempt, so whether an earlier attempt was written is unknown"
            )
        raise CommitConflict(f"{where}: {_code(lost)}, the object is not the version this writer expected")

    def get_range(self, key: str, start: int, length: int) -> bytes:
        with self._errors("get", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}")
            return response["Body"].read()

    def open_read(self, key: str) -> BinaryIO:
        with self._errors("get", key):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            except ClientError as error:
                if _code(error) == "NoSuchKey":
                    raise FileNotFoundError(f"no object at s3://{self.bucket}/{self._key(key)}") from None
                raise

    def copy(self, source_key: str, key: str) -> None:
        with self._errors("copy", key):
            # Server-side: the managed copy uses UploadPartCopy above the multipart threshold.
            self.client.copy({"Bucket": self.bucket, "Key": self._key(source_key)}, self.bucket, self._key(key), Config=_TRANSFER)

    def download(self, key: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors("download", key):
            # The transfer manager writes a temporary file and renames it when complete.
            self.client.download_file(self.bucket, self._key(key), str(local_path), Config=_TRANSFER)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        arguments = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
        if start_after is not None:
            # A key this backend listed: S3-compatible servers differ in order across "/" boundaries,
            # so a cursor is always a real key, never one computed from a prefix.
            arguments["StartAfter"] = self._key(start_after)
        with self._errors("list", prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=self._relative(obj["Key"]),
                        size=obj["Size"],
                        etag=obj["ETag"].strip('"'),
                        modified=obj["LastModified"].timestamp(),
                    )

    def list_folders(self, prefix: str) -> Sequence[str]:
        folders: list[str] = []
        with self._errors("list", prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix), Delimiter="/"):
                folders.extend(self._relative(common["Prefix"]) for common in page.get("CommonPrefixes", []))
        return sorted(folders)

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with self._errors("delete", batch[0]):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(key)} for key in batch], "Quiet": True},
                )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise LakeStorageError(
                    f"S3 delete of {len(errors)} of {len(batch)} objects under {self.root_uri} failed at "
                    f"{self._endpoint()}: {first.get('Code')} for {first.get('Key')!r}"
                )

    def spark_path(self, key: str) -> str | None:
        return f"s3a://{self.bucket}/{self._key(key)}" if self.spark_s3a else None

    # --- errors -------------------------------------------------------------------------------

    def _endpoint(self) -> str:
        if self._client is not None:
            return self._client.meta.endpoint_url
        return self._client_options.get("endpoint_url") or "AWS S3"

    @contextmanager
    def _errors(self, operation: str, key: str):
        """Turn the failures a person must fix into one clear line; a missing key on download
        becomes FileNotFoundError, as on a local disk."""
        try:
            yield
        except (ClientError, BotoCoreError) as error:
            raise self._translate(operation, key, error) from None
        except Exception as error:
            # The transfer manager wraps client errors (S3UploadFailedError, RetriesExceededError).
            cause = _botocore_cause(error)
            if cause is None:
                raise
            raise self._translate(operation, key, cause) from None

    def _translate(self, operation: str, key: str, error: Exception) -> Exception:
        where = f"S3 {operation} of s3://{self.bucket}/{self._key(key)} at {self._endpoint()}"
        if isinstance(error, ClientError) and _code(error).isdigit():
            # HEAD answers (download's first request) carry only an HTTP status: ask the bucket
            # with a request whose answer has a body, to name the real cause.
            probe = self._probe()
            if probe is None and _code(error) == "404":
                return FileNotFoundError(f"no object at s3://{self.bucket}/{self._key(key)}")
            error = probe or error
        if isinstance(error, ClientError):
            code = _code(error)
            reason = _REASONS.get(code, "{code}: {message}").format(
                bucket=self.bucket, code=code, message=error.response.get("Error", {}).get("Message", "")
            )
        elif isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
            reason = "endpoint unreachable (no connection after retries); check AWS_ENDPOINT_URL and the network"
        elif isinstance(error, ReadTimeoutError):
            reason = f"no answer within {READ_TIMEOUT}s (after retries)"
        elif isinstance(error, NoCredentialsError):
            reason = "no AWS credentials found (environment, profile or role)"
        else:
            reason = f"{type(error).__name__}: {error}"
        return LakeStorageError(f"{where} failed: {reason}")

    def _probe(self) -> ClientError | None:
        try:
            self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except ClientError as error:
            return error
        except BotoCoreError:
            return None
        return None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _is_precondition_failure(error: ClientError, expected_etag: str | None) -> bool:
    """The answers meaning "not written: the object is not as expected": 412 (AWS, SeaweedFS, MinIO),
    409 ConditionalRequestConflict (AWS: a concurrent conditional write to the key), and for `If-Match`
    404 NoSuchKey (AWS, when the object is gone; SeaweedFS answers 412)."""
    code = _code(error)
    if code in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
        return True
    return expected_etag is not None and code == "NoSuchKey"


def _botocore_cause(error: BaseException | None) -> Exception | None:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (ClientError, BotoCoreError)):
            return error
        last = getattr(error, "last_exception", None)  # boto3's RetriesExceededError
        if isinstance(last, (ClientError, BotoCoreError)):
            return last
        error = error.__cause__ or error.__context__
    return None
