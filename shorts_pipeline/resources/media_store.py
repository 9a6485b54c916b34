"""The media store: where every stage keeps its files, on any fsspec filesystem.

A local folder (SHORTS_HOME/media) by default; `s3://bucket/prefix` or any other fsspec
URL by configuration. Stages render into a local scratch file and `put` it; the store makes
the write atomic (a temporary name, then a rename; on object stores a single PUT is already
all-or-nothing) so a half-written file is never visible under its real key. Keys are
validated relative paths, so nothing can escape the store's root.

Every run that uses the store holds its project's lock (locks.py) for the whole run, so two
runs of one project never interleave their writes and the records Dagster keeps always
describe the files in the store; a second run waits for the first. When a run starts, the
temp files and scratch folders that crashed runs left behind are swept away.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import fsspec
from pydantic import Field, PrivateAttr

from shorts_pipeline.home import cache_dir, media_url
from shorts_pipeline.keys import validate_media_key
from shorts_pipeline.locks import LockHolder, project_lock, sweep_stale_temp, working
from shorts_pipeline.render.ffmpeg_run import DISK_ERRNOS, disk_problem

S3_PART_BYTES = 16 * 2**20


class MediaStoreError(Exception):
    """The media store could not be reached, or refused an operation."""


def _explain(err: Exception) -> str:
    text = f"{type(err).__name__}: {err}"
    name = type(err).__name__
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
        return disk_problem(err.errno, err.filename or cache_dir())
    if name in {"NoCredentialsError", "PartialCredentialsError"}:
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile)"
    if "NoSuchBucket" in text or (isinstance(err, FileNotFoundError) and "bucket" in text.lower()):
        return "the bucket does not exist: create it, or fix the bucket name in SHORTS_MEDIA_URL"
    if any(code in text for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch")):
        return "the credentials were refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(err, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return "access denied: the credentials lack permission for this bucket or prefix"
    if isinstance(err, FileNotFoundError):
        return "no such object"
    if any(word in name for word in ("Connect", "Endpoint", "Timeout")):
        return "the storage endpoint cannot be reached: check S3_ENDPOINT_URL and the network"
    return text.splitlines()[0][:300]


class MediaStoreResource(dg.ConfigurableResource):
    """Files of every stage, on a local folder (default: SHORTS_HOME/media) or any fsspec URL.

    `url` may be a path or `s3://bucket/prefix` (also SHORTS_MEDIA_URL). For S3 the
    credentials come from the standard AWS_* environment variables (or any other botocore
    source), the endpoint from `endpoint_url` or S3_ENDPOINT_URL (MinIO, other S3-compatible
    stores), the region from `region` or AWS_REGION. Other fsspec options go in
    `storage_options`. `public_base_url`, when set, is how the outside world reaches the files;
    otherwise S3 files get presigned URLs valid for `url_expiry_seconds`.
    """

    url: str | None = Field(default=None, description="Root path or fsspec URL.")
    endpoint_url: str | None = Field(default=None, description="S3 endpoint (MinIO etc.).")
    region: str | None = Field(default=None, description="S3 region.")
    storage_options: dict[str, Any] = Field(default_factory=dict)
    public_base_url: str | None = Field(default=None)
    url_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600)
    project_lock_wait_seconds: float = Field(
        default=3600,
        ge=0,
        description="How long a run waits for another run of the same project to finish.",
    )

    _fs: Any = PrivateAttr(default=None)
    _root: str = PrivateAttr(default="")
    _where: str = PrivateAttr(default="")

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Generator[Any, None, None]:
        """For the whole run: register as a live worker, sweep what crashed runs left, and
        hold the project's lock (waiting for another run of the same project to end)."""
        run = context.run
        key = run.tags.get("dagster/partition") if run is not None else None
        log = context.log or logging.getLogger(__name__)
        with working():
            root = self.local_root
            removed = sweep_stale_temp(cache_dir(), also=[root] if root else [])
            if removed:
                log.info(
                    f"removed {len(removed)} temp files left by interrupted runs: "
                    + ", ".join(p.name for p in removed[:5])
                )
            if key is None or run is None:
                yield self
                return

            def waiting(holder: LockHolder | None) -> None:
                who = holder.describe() if holder else "another process"
                log.info(f"waiting for the other run of {key} to finish ({who})")

            with project_lock(
                key, run.run_id, wait_seconds=self.project_lock_wait_seconds, on_wait=waiting
            ):
                yield self

    def _ensure(self) -> None:
        if self._fs is not None:
            return
        root = self.url or media_url()
        options = dict(self.storage_options)
        if root.startswith(("s3://", "s3a://")):
            client = dict(options.pop("client_kwargs", {}))
            endpoint = self.endpoint_url or os.environ.get("S3_ENDPOINT_URL")
            region = (
                self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            )
            if endpoint:
                client.setdefault("endpoint_url", endpoint)
            if region:
                client.setdefault("region_name", region)
            options["client_kwargs"] = client
            self._where = f"{root} (endpoint {endpoint or 'AWS default'})"
        else:
            self._where = root
        fs, path = fsspec.core.url_to_fs(root, **options)
        self._fs, self._root = fs, path.rstrip("/")
        if self.is_local:
            Path(self._root).mkdir(parents=True, exist_ok=True)

    @property
    def fs(self) -> Any:
        self._ensure()
        return self._fs

    @property
    def is_local(self) -> bool:
        self._ensure()
        protocol = self._fs.protocol
        protocols = protocol if isinstance(protocol, tuple | list) else (protocol,)
        return "file" in protocols or "local" in protocols

    @property
    def local_root(self) -> Path | None:
        """The store's folder when it is a local one, else None."""
        return Path(self._root) if self.is_local else None

    def full_path(self, key: str) -> str:
        self._ensure()
        return f"{self._root}/{validate_media_key(key)}"

    def exists(self, key: str) -> bool:
        with self._errors("checking", key):
            return bool(self.fs.exists(self.full_path(key)))

    def size(self, key: str) -> int:
        with self._errors("reading the size of", key):
            return int(self.fs.size(self.full_path(key)))

    def put(self, local_path: str | Path, key: str) -> str:
        """Copy a local file into the store under `key`, atomically; return the key."""
        dest = self.full_path(key)
        if self.is_local:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{dest}.{uuid.uuid4().hex[:8]}.partial"
            try:
                shutil.copyfile(local_path, tmp)
                os.replace(tmp, dest)
            except OSError as err:
                if err.errno in DISK_ERRNOS:
                    raise MediaStoreError(
                        f"storing {key} in the media store {self._where} failed: "
                        f"{disk_problem(err.errno, dest)}"
                    ) from err
                raise
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            # s3fs reads a file of up to two parts in one PUT and streams anything larger as
            # a multipart upload, part by part; the object appears only once it completes.
            options = {"chunksize": S3_PART_BYTES} if self._where.startswith("s3") else {}
            with self._errors("uploading", key):
                self.fs.put_file(str(local_path), dest, **options)
        return key

    def put_bytes(self, data: bytes, key: str) -> str:
        folder = cache_dir()
        handle, name = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".partial")
        try:
            with os.fdopen(handle, "wb") as f:
                f.write(data)
            return self.put(name, key)
        except OSError as err:
            if err.errno in DISK_ERRNOS:
                raise MediaStoreError(
                    f"storing {key} failed while writing its temp file: "
                    f"{disk_problem(err.errno, folder)}"
                ) from err
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    @contextmanager
    def writing(self, key: str, suffix: str = "") -> Iterator[Path]:
        """Yield a scratch path to write; on success it is stored under `key`, else dropped."""
        validate_media_key(key)
        scratch = Path(tempfile.mkdtemp(prefix="shorts-", dir=cache_dir()))
        path = scratch / f"out{suffix or Path(key).suffix}"
        try:
            yield path
            if not path.exists():
                raise FileNotFoundError(f"nothing was written for media key {key}")
            self.put(path, key)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def local_path(self, key: str) -> Path:
        """A local file with the content of `key`: the file itself when the store is local,
        else a cached download (keyed by the object's path and size)."""
        full = self.full_path(key)
        if self.is_local:
            path = Path(full)
            if not path.exists():
                raise FileNotFoundError(f"media key {key} is missing from {self._root}")
            return path
        with self._errors("reading", key):
            info = self.fs.info(full)
        tag = hashlib.sha256(f"{full}\0{info.get('size')}\0{info.get('ETag', '')}".encode())
        cached = cache_dir() / "store" / tag.hexdigest()[:16] / Path(key).name
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.name + ".partial")
            try:
                with self._errors("downloading", key):
                    self.fs.get_file(full, str(tmp))
                os.replace(tmp, cached)
            finally:
                tmp.unlink(missing_ok=True)
        return cached

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self._errors("reading", key), self.fs.open(self.full_path(key), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def url_for(self, key: str) -> str:
        """Where a person or a publisher can fetch the file."""
        if self.public_base_url:
            return f"{self.public_base_url.rstrip('/')}/{validate_media_key(key)}"
        full = self.full_path(key)
        if self.is_local:
            return Path(full).resolve().as_uri()
        if hasattr(self.fs, "sign") and self._where.startswith("s3"):
            with self._errors("signing a URL for", key):
                return str(self.fs.sign(full, expiration=self.url_expiry_seconds))
        protocol = self.fs.protocol[0] if isinstance(self.fs.protocol, tuple) else self.fs.protocol
        return f"{protocol}://{full}"

    def delete(self, key: str) -> None:
        path = self.full_path(key)
        with self._errors("deleting", key):
            if self.fs.exists(path):
                self.fs.rm(path)

    def check(self) -> str:
        """Write, read back and delete a small object; raise MediaStoreError saying why not."""
        key = f"doctor/check-{uuid.uuid4().hex[:8]}.txt"
        self.put_bytes(b"ok", key)
        try:
            with self._errors("reading", key), self.fs.open(self.full_path(key), "rb") as f:
                if f.read() != b"ok":
                    raise MediaStoreError(f"{self._where}: a test object read back differently")
        finally:
            self.delete(key)
        return self._where

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turn a storage library's exception into one sentence: what, where, what to do.
        Only the location is named — never credentials."""
        try:
            yield
        except MediaStoreError:
            raise
        except Exception as err:
            disk_full = isinstance(err, OSError) and err.errno in DISK_ERRNOS
            if self.is_local and isinstance(err, OSError | ValueError) and not disk_full:
                raise
            raise MediaStoreError(
                f"{action} {key} in {self._where} failed: {_explain(err)}"
            ) from err
