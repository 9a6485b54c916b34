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
