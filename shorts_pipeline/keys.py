"""The one place that turns titles into project keys and checks keys and media paths.

A project key is a readable ASCII slug plus a short hash of the exact title and format, e.g.
`football-skills-3f9a1c2e`. It is safe as a file name, an S3 key, a URL path segment and a
Dagster partition key for any title — Hangul-only, emoji-only, `../`, quotes, 300 characters.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SLUG_MAX = 40
# Matched with `fullmatch`: `$` alone would let a trailing newline through ("abc\n").
KEY_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
KEY_MAX = SLUG_MAX + 9
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class UnsafeKeyError(ValueError):
    """A key or media path that could escape its folder or break a URL."""


def project_key(title: str, fmt: str = "ranking") -> str:
    """`slug-hash8` for a title; the same title and format always give the same key."""
    digest = hashlib.sha256(f"{fmt}\0{title}".encode()).hexdigest()[:8]
    return f"{slugify(title, fallback=fmt)}-{digest}"


def slugify(text: str, fallback: str = "project", max_length: int = SLUG_MAX) -> str:
    """Lower-case ASCII words joined by dashes; `fallback` when nothing ASCII is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_length:
            if not slug:
                slug = word[:max_length]
            break
        slug = candidate
    fallback_slug = re.sub(r"[^a-z0-9]+", "-", fallback.lower()).strip("-") or "project"
    return slug or fallback_slug


def validate_project_key(key: str) -> str:
    if not (0 < len(key) <= KEY_MAX and KEY_PATTERN.fullmatch(key)):
        raise UnsafeKeyError(
            f"{key!r} is not a project key (lower-case letters, digits and dashes, at most "
            f"{KEY_MAX} characters); run `shorts status` to list the keys"
        )
    return key


def validate_media_key(key: str) -> str:
    """A relative media-store path made of safe segments: no `..`, no absolute paths."""
    parts = key.split("/")
    if not key or any(not _SAFE_SEGMENT.fullmatch(p) for p in parts):
        raise UnsafeKeyError(
            f"media key {key!r} is unsafe: use '/'-separated segments of letters, digits, "
            "'.', '_' and '-', none starting with '.'"
        )
    return key


def safe_segment(text: str, max_length: int = 64) -> str:
    """Turn an id from any source (a clip id, a file stem) into one safe path segment."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_")[:max_length].strip(".-_")
    if not slug:
        slug = "x"
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return slug if slug == text else f"{slug}-{digest}"
