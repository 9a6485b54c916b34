"""Reuse of unchanged work: a re-run of an unchanged project skips what it already made.

A stage that reuses its outputs
1. computes a fingerprint of everything they are made from: the data (timeline, script,
   settings…), the content of every input file (a digest, memoised by path, size, mtime and
   inode so an untouched file is not read again), the source of the code that makes them and
   the identity of the tools and fonts it uses;
2. reads its record from the media store, a small JSON beside the outputs;
3. reuses the outputs only when the record has the same fingerprint and the outputs are
   still there as recorded. Otherwise it deletes the record *before* it writes new outputs
   and writes the new record *last*, atomically: a record always describes the files beside
   it, even after a crash half-way.

`SHORTS_REUSE=off` makes every stage make everything again (benchmarks that time the render
on an unchanged project need it).
"""

import dataclasses
import enum
import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable
from datetime import date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel

from shorts_pipeline.home import cache_dir
from shorts_pipeline.render.probe import MediaInfo, ffmpeg_binary, probe_clip
from shorts_pipeline.resources.media_store import MediaStoreResource

# Bump when what a fingerprint covers changes: every record made before is then stale.
SCHEME_VERSION = 1
# Files at least this large keep their digest on disk between runs (smaller ones hash in
# well under a millisecond per 100 KB and would only litter the cache).
PERSISTED_DIGEST_BYTES = 1 << 20

_digests: dict[str, str] = {}


def reuse_enabled() -> bool:
    """False when SHORTS_REUSE is off/0/false/no: every stage makes everything again."""
    return os.environ.get("SHORTS_REUSE", "on").strip().lower() not in {"off", "0", "false", "no"}


def fingerprint(*parts: Any) -> str:
    """A digest of `parts`: plain data, dataclasses and pydantic models, with every absolute
    path of an existing file replaced by the digest of its content (so a file rewritten with
    the same bytes, or a temporary copy, fingerprints the same, and any change to it shows)."""
    text = json.dumps(
        [SCHEME_VERSION, *(_plain(p) for p in parts)],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    """The SHA-256 of a file's content; an untouched file (same path, size, mtime, inode) is
    not read again in this process, nor, when it is large, in a later one."""
    tag, size = stat_tag(path), os.path.getsize(path)
    known = _digests.get(tag)
    if known is not None:
        return known
    slot = _digest_slot(tag) if size >= PERSISTED_DIGEST_BYTES else None
    if slot is not None:
        try:
            known = slot.read_text().strip()
        except OSError:
            known = None
        if known and len(known) == 64:
            _digests[tag] = known
            return known
    digest = content_digest(path)
    _digests[tag] = digest
    if slot is not None:
        write_cache_entry(slot, digest)
    return digest


def content_digest(path: str | Path) -> str:
    """The SHA-256 of a file's content, read now (nothing remembered)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remember_digest(path: str | Path, digest: str) -> None:
    """Record the digest of a file just written whose content is known (it was hashed
    before it was copied there), so the next check of it need not read it."""
    tag = stat_tag(path)
    _digests[tag] = digest
    if os.path.getsize(path) >= PERSISTED_DIGEST_BYTES:
        write_cache_entry(_digest_slot(tag), digest)


@functools.cache
def code_version(*modules: str) -> str:
    """A digest of the source of `modules` (a package stands for every module in it): any
    edit of the code that makes an output makes its old outputs stale."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no module {name}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for file in files:
            digest.update(f"{name}:{file.name}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


@functools.cache
def tools_identity() -> dict[str, Any]:
    """The ffmpeg binary (path, size, mtime): an upgrade changes what a render makes."""
    return {"ffmpeg": _stat_identity(ffmpeg_binary())}


@functools.cache
def fonts_identity() -> list[Any]:
    """Every font file text is drawn and subtitles are burned with (path, size, mtime)."""
    from shorts_pipeline.render.text import find_fonts

    faces = []
    for bold in (True, False):
        fonts = find_fonts(bold)
        faces += [(face.path, face.index) for face in fonts.text]
        if fonts.emoji is not None:
            faces.append((fonts.emoji.path, fonts.emoji.index))
    return [[_stat_identity(path), index] for path, index in sorted(set(faces))]


def load_record(store: MediaStoreResource, key: str) -> dict[str, Any] | None:
    """The reuse record at `key`, or None when there is none (or it cannot be read)."""
    if not reuse_enabled() or not store.exists(key):
        return None
    try:
        data = json.loads(store.local_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save_record(store: MediaStoreResource, key: str, record: dict[str, Any]) -> None:
    """Write the reuse record at `key` (atomically): last, once the outputs are stored."""
    data = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)
    store.put_bytes(data.encode(), key)


def forget_record(store: MediaStoreResource, key: str) -> None:
    """Delete the record at `key` before its outputs are replaced."""
    store.delete(key)


def all_stored(store: MediaStoreResource, keys: Iterable[str | None]) -> bool:
    return all(store.exists(k) for k in keys if k)


def probe_cached(
    path: str | Path, *, check_tail: bool = False, digest: str | None = None
) -> MediaInfo:
    """`probe_clip(path, check_tail=...)`, remembered by the file's content `digest` when
    given, else by its path, size, mtime and inode, and by the probing code's version:
    probing (and decoding the tail) of an unchanged clip happens once. Failures are not
    remembered: the next run probes again and says why."""
    if not reuse_enabled():
        return probe_clip(path, check_tail=check_tail)
    identity = digest or stat_tag(path)
    tag = fingerprint("probe", identity, check_tail, code_version("shorts_pipeline.render.probe"))
    slot = cache_dir() / "reuse" / "probe" / f"{tag[:32]}.json"
    try:
        known = media_info_from_json(json.loads(slot.read_text()))
        return dataclasses.replace(known, path=str(path))
    except (OSError, ValueError, TypeError, KeyError):
        pass
    info = probe_clip(path, check_tail=check_tail)
    write_cache_entry(slot, json.dumps(media_info_to_json(info)))
    return info


def media_info_to_json(info: MediaInfo) -> dict[str, Any]:
    return {**dataclasses.asdict(info), "sar": str(info.sar)}


def media_info_from_json(data: dict[str, Any]) -> MediaInfo:
    return MediaInfo(**{**data, "sar": Fraction(data["sar"])})


def stat_tag(path: str | Path) -> str:
    """A file's identity without reading it: path, size, mtime and inode."""
    st = os.stat(path)
    return f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_dev}"


def write_cache_entry(path: Path, text: str) -> None:
    """Write a machine-local cache entry atomically. Best effort: an entry that cannot be
    written is only a miss next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(3).hex()}.partial")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass


def encode_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata as JSON, for a record: plain values, Markdown, JSON, URLs and paths."""
    out: dict[str, Any] = {}
    for name, value in metadata.items():
        if isinstance(value, dg.MarkdownMetadataValue):
            out[name] = {"md": value.md_str}
        elif isinstance(value, dg.JsonMetadataValue):
            out[name] = {"json": value.data}
        elif isinstance(value, dg.UrlMetadataValue):
            out[name] = {"url": value.url}
        elif isinstance(value, dg.PathMetadataValue):
            out[name] = {"path": value.path}
        elif value is None or isinstance(value, str | int | float | bool):
            out[name] = {"value": value}
        else:
            raise TypeError(f"metadata {name!r} of type {type(value).__name__} is not kept")
    return out


def decode_metadata(encoded: dict[str, Any]) -> dict[str, Any]:
    """The metadata `encode_metadata` kept."""
    kinds = {
        "md": dg.MetadataValue.md,
        "json": dg.MetadataValue.json,
        "url": dg.MetadataValue.url,
        "path": dg.MetadataValue.path,
    }
    out: dict[str, Any] = {}
    for name, entry in encoded.items():
        [(kind, value)] = entry.items()
        out[name] = kinds[kind](value) if kind in kinds else value
    return out


# --- helpers ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """`value` as JSON-able data for a fingerprint; existing files as their digests."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"~type": type(value).__name__, **fields}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        if os.path.isabs(value) and os.path.isfile(value):
            return {"file": file_digest(value), "suffix": Path(value).suffix.lower()}
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Fraction | datetime | date):
        return str(value)
    # Unknown objects: their repr (an address in it only makes the fingerprint differ).
    return repr(value)


def _stat_identity(path: str) -> list[Any]:
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns]


def _digest_slot(tag: str) -> Path:
    return cache_dir() / "reuse" / "digests" / hashlib.sha256(tag.encode()).hexdigest()[:32]
