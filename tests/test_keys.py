import posixpath
import re
from pathlib import PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shorts_pipeline.keys import (
    UnsafeKeyError,
    project_key,
    safe_segment,
    validate_media_key,
    validate_project_key,
)

NASTY_TITLES = [
    "축구 묘기 베스트",
    "🔥⚽🔥",
    "../../etc/passwd",
    "'; DROP TABLE projects; --",
    '"quoted" & <b>html</b> %s {0} $(rm -rf /)',
    "x" * 300,
    "Top 5 football skills",
    "\n\t",
]


@pytest.mark.parametrize("title", NASTY_TITLES)
def test_key_is_safe_for_any_title(title):
    key = project_key(title)
    assert validate_project_key(key) == key
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key)
    assert len(key) <= 49
    # safe as a path segment: no separators, no dots
    assert PurePosixPath(key).name == key and "." not in key


def test_key_is_readable_and_stable():
    assert project_key("Top 5 Football Skills!").startswith("top-5-football-skills-")
    assert project_key("same") == project_key("same")
    assert project_key("same", "ranking") != project_key("same", "explainer")
    assert project_key("축구").startswith("ranking-")


@given(st.text(max_size=400), st.sampled_from(["ranking", "explainer", "extend"]))
@settings(max_examples=300, deadline=None)
def test_key_property(title, fmt):
    key = project_key(title, fmt)
    validate_project_key(key)
    assert key.isascii() and "/" not in key and ".." not in key


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_safe_segment_property(text):
    seg = safe_segment(text)
    assert validate_media_key(seg) == seg


@pytest.mark.parametrize(
    "bad", ["../x", "/abs", "a/../b", "a//b", ".hidden", "", "a/b\\c", "a\nb", "projects/ü.mp4"]
)
def test_media_key_rejects_escapes(bad):
    with pytest.raises(UnsafeKeyError):
        validate_media_key(bad)


@pytest.mark.parametrize("bad", ["", "A", "../x", "a_b", "a" * 60, "-a", "a-"])
def test_project_key_validation(bad):
    with pytest.raises(UnsafeKeyError):
        validate_project_key(bad)


# --- issue 7: what a validated key can never do ---------------------------------------------

PATHY = st.text(alphabet=st.sampled_from(list("ab0./\\-_ \n\t\x00é~:")), max_size=24)


@given(st.one_of(PATHY, st.text(max_size=40)))
@settings(max_examples=400, deadline=None)
def test_a_media_key_that_validates_stays_inside_the_store_root(key):
    try:
        validate_media_key(key)
    except UnsafeKeyError:
        return
    joined = posixpath.normpath(posixpath.join("/store/root", key))
    assert joined.startswith("/store/root/") and joined == f"/store/root/{key}"
    assert key.isascii() and key.isprintable() and " " not in key
    assert not any(part.startswith(".") or not part for part in key.split("/"))


@given(st.one_of(PATHY, st.text(max_size=60)))
@settings(max_examples=400, deadline=None)
def test_a_project_key_that_validates_is_one_plain_segment(key):
    try:
        validate_project_key(key)
    except UnsafeKeyError:
        return
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key) and len(key) <= 49
    assert validate_media_key(f"projects/{key}/video.mp4")


@pytest.mark.parametrize("key", ["abc\n", "top-5\n", "abc\r", "abc\x00", " abc", "abc "])
def test_a_trailing_newline_or_space_is_not_part_of_a_valid_key(key):
    with pytest.raises(UnsafeKeyError):
        validate_project_key(key)
    with pytest.raises(UnsafeKeyError):
        validate_media_key(f"projects/{key}")


@given(st.text(max_size=120), st.text(max_size=120))
@settings(max_examples=300, deadline=None)
def test_different_titles_get_different_keys(a, b):
    if a != b:
        assert project_key(a) != project_key(b)
    assert project_key(a) != project_key(a, "explainer")


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_a_safe_segment_is_stable_and_never_a_path(text):
    segment = safe_segment(text)
    assert segment == safe_segment(text)
    assert "/" not in segment and segment not in (".", "..") and len(segment) <= 71
