import hashlib
from pathlib import Path

import pytest

from shorts_pipeline.keys import UnsafeKeyError
from shorts_pipeline.resources.media_store import MediaStoreResource


def test_local_default_under_home(shorts_home, tmp_path):
    store = MediaStoreResource()
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1000)
    store.put(src, "projects/p/a.bin")
    assert (shorts_home / "media" / "projects" / "p" / "a.bin").read_bytes() == b"x" * 1000
    assert store.exists("projects/p/a.bin")
    assert store.size("projects/p/a.bin") == 1000
    assert store.sha256("projects/p/a.bin") == hashlib.sha256(b"x" * 1000).hexdigest()
    assert store.url_for("projects/p/a.bin").startswith("file://")
    assert store.local_path("projects/p/a.bin").read_bytes() == b"x" * 1000


def test_writing_is_atomic_and_drops_failures(shorts_home):
    store = MediaStoreResource()
    with pytest.raises(RuntimeError), store.writing("projects/p/v.mp4") as path:
        path.write_bytes(b"half")
        raise RuntimeError("render died")
    assert not store.exists("projects/p/v.mp4")
    leftovers = [p for p in (shorts_home / "media").rglob("*") if p.is_file()]
    assert leftovers == []
    with store.writing("projects/p/v.mp4") as path:
        path.write_bytes(b"whole")
    assert store.local_path("projects/p/v.mp4").read_bytes() == b"whole"


def test_fsspec_url_memory_filesystem(tmp_path):
    store = MediaStoreResource(url="memory://bucket/prefix")
    src = tmp_path / "f.txt"
    src.write_text("hello")
    store.put(src, "a/f.txt")
    assert store.exists("a/f.txt")
    assert Path(store.local_path("a/f.txt")).read_text() == "hello"
    assert store.url_for("a/f.txt") == "memory:///bucket/prefix/a/f.txt"


@pytest.mark.parametrize("key", ["../escape.txt", "/etc/passwd", "a/../../b"])
def test_keys_cannot_escape(key, tmp_path):
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(UnsafeKeyError):
        MediaStoreResource().put(src, key)
