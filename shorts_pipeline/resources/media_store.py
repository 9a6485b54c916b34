"""The media store: where every stage keeps its files, on any fsspec filesystem.

A local folder (SHORTS_HOME/media) by default; `s3://bucket/prefix` or any other fsspec
URL by configuration. Stages render into a local scratch file and `put` it; the store makes
the write atomic (a temporary name, then a rename; on object stores a single PUT is already
all-or-nothing) so a half-written file is never visible under its real key. Keys are
validated relative paths, so nothing can escape the store's root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import fsspec
from pydantic import Field, PrivateAttr

from shorts_pipeline.home import cache_dir, media_url
from shorts_pipeline.keys import validate_media_key


class MediaStoreResource(dg.ConfigurableResource):
    """Files of every stage, on a local folder (default: SHORTS_HOME/media) or any fsspec URL.

    `url` may be a path or `s3://bucket/prefix`; `storage_options` go to fsspec (for S3:
    endpoint_url, key, secret — prefer the standard AWS_* environment variables).
    `public_base_url`, when set, is how the outside world reaches the files.
    """

    url: str | None = Field(default=None, description="Root path or fsspec URL.")
    storage_options: dict[str, Any] = Field(default_factory=dict)
    public_base_url: str | None = Field(default=None)

    _fs: Any = PrivateAttr(default=None)
    _root: str = PrivateAttr(default="")

    def _ensure(self) -> None:
        if self._fs is not None:
            return
        root = self.url or media_url()
        fs, path = fsspec.core.url_to_fs(root, **self.storage_options)
        self._fs, self._root = fs, path.rstrip("/")
        if self.is_local:
            Path(self._root).mkdir(parents=True, exist_ok=True)

    @property
    def fs(self) -> Any:
        self._ensure()
        return self._fs

    @property
    def is_local(self) -> bool:
        protocol = self._fs.protocol if self._fs is not None else "file"
        protocols = protocol if isinstance(protocol, tuple | list) else (protocol,)
        return "file" in protocols or "local" in protocols

    def full_path(self, key: str) -> str:
        self._ensure()
        return f"{self._root}/{validate_media_key(key)}"

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.full_path(key)))

    def size(self, key: str) -> int:
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
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self.fs.put_file(str(local_path), dest)
        return key

    def put_bytes(self, data: bytes, key: str) -> str:
        with tempfile.NamedTemporaryFile(delete=False, dir=cache_dir()) as f:
            f.write(data)
        try:
            return self.put(f.name, key)
        finally:
            os.unlink(f.name)

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
        info = self.fs.info(full)
        tag = hashlib.sha256(f"{full}\0{info.get('size')}\0{info.get('ETag', '')}".encode())
        cached = cache_dir() / "store" / tag.hexdigest()[:16] / Path(key).name
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.name + ".partial")
            self.fs.get_file(full, str(tmp))
            os.replace(tmp, cached)
        return cached

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(self.full_path(key), "rb") as f:
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
        protocol = self.fs.protocol[0] if isinstance(self.fs.protocol, tuple) else self.fs.protocol
        return f"{protocol}://{full}"

    def delete(self, key: str) -> None:
        path = self.full_path(key)
        if self.fs.exists(path):
            self.fs.rm(path)
