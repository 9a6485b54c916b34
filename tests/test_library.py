import json
import re
import shutil

import pytest

from shorts_pipeline.render.synth import (
    ClipRecipe,
    make_audio_only,
    make_clip,
    make_png_as_mp4,
    make_truncated_mp4,
)
from shorts_pipeline.resources.clip_sources import (
    ClipSourceError,
    LocalLibrarySource,
    NoMatchesError,
)


def test_search_matches_titles_and_tags_with_probed_metadata(clip_library):
    outcome = LocalLibrarySource(directory=str(clip_library)).search(["football", "skills"])
    ids = [c.id for c in outcome.candidates]
    assert "cats" not in ids
    assert set(ids) == {"rabona", "portrait", "square", "rotated"}
    by_id = {c.id: c for c in outcome.candidates}
    # the rotated phone clip is coded 640x360 with rotation 90: shown as portrait
    assert (by_id["rotated"].width, by_id["rotated"].height) == (360, 640)
    assert by_id["rabona"].views == 1_200_000 and by_id["rabona"].duration == pytest.approx(
        4.0, abs=0.1
    )
    assert by_id["rabona"].published.year == 2026
    assert by_id["portrait"].tags == ["football"]


def test_csv_catalog_and_files_without_entries(clip_library, tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(clip_library / "rabona.mp4", root / "rabona.mp4")
    shutil.copy(clip_library / "cats.mp4", root / "my_cat-video.mp4")
    (root / "catalog.csv").write_text(
        "id,file,title,views,likes,published,tags\n"
        "r1,rabona.mp4,Rabona!,10,1,2026-01-02,football;goal\n"
    )
    source = LocalLibrarySource(directory=str(root))
    got = source.search(["goal"]).candidates
    assert [(c.id, c.title, c.views, c.tags) for c in got] == [
        ("r1", "Rabona!", 10, ["football", "goal"])
    ]
    cat = source.search(["cat"]).candidates
    assert [c.title for c in cat] == ["My cat video"]


def test_unusable_files_are_skipped_with_reasons(library_copy):
    (library_copy / "empty football.mp4").write_bytes(b"")
    (library_copy / "notes football.mp4").write_text("this is text, not a video")
    make_audio_only(library_copy / "football commentary.mp4", seconds=2)
    make_png_as_mp4(library_copy / "football poster.mp4")
    make_truncated_mp4(library_copy / "rabona.mp4", library_copy / "football half.mp4")
    make_clip(library_copy / "football blink.mp4", ClipRecipe(width=320, height=240, seconds=0.8))
    outcome = LocalLibrarySource(directory=str(library_copy)).search(["football"])
    reasons = dict(outcome.skipped)
    assert "empty" in reasons["empty football.mp4"]
    assert "not a readable media file" in reasons["notes football.mp4"]
    assert "audio-only" in reasons["football commentary.mp4"]
    assert "image" in reasons["football poster.mp4"]
    assert (
        "truncated" in reasons["football half.mp4"] or "incomplete" in reasons["football half.mp4"]
    )
    assert re.search(
        r"too short \(0\.8\d s\); clips need at least 1\.0 s", reasons["football blink.mp4"]
    )
    assert len(outcome.candidates) == 4


def test_no_match_names_keywords_and_folder(clip_library):
    with pytest.raises(NoMatchesError, match=r"'basketball dunks'.*other keywords"):
        LocalLibrarySource(directory=str(clip_library)).search(["basketball dunks"])


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(ClipSourceError, match=r"does not exist; run `shorts demo`"):
        LocalLibrarySource(directory=str(tmp_path / "nowhere")).search(["x"])


def test_broken_catalog_is_reported(library_copy):
    (library_copy / "catalog.json").write_text("{not json")
    with pytest.raises(ClipSourceError, match=r"catalog\.json cannot be read"):
        LocalLibrarySource(directory=str(library_copy)).search(["football"])


def test_fetch_copies_without_partial_files(clip_library, tmp_path):
    source = LocalLibrarySource(directory=str(clip_library))
    cand = source.search(["rabona"]).candidates[0]
    dest = source.fetch(cand, tmp_path / "dl")
    assert dest.read_bytes() == (clip_library / "rabona.mp4").read_bytes()
    assert not list((tmp_path / "dl").glob("*.partial"))
    assert json.loads((clip_library / "catalog.json").read_text())  # untouched
