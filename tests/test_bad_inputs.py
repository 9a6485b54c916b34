"""The bad-input corpus (tests/bad_inputs.py) through the real pipeline.

(a) every broken file is refused by the library source and by the probe with its own reason,
and every odd but usable clip is accepted and probed as it really is; (b) one ranking over a
library mixing both renders, passes its checks, and lists every broken file as skipped with
its reason; (c) every hostile title gets a safe key and a drawn title card and writes nothing
outside SHORTS_HOME, and an explainer whose text is full of shell and format syntax is spoken,
subtitled and rendered with that text shown as it is.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops

from shorts_pipeline.cli import main
from shorts_pipeline.keys import project_key, validate_project_key
from shorts_pipeline.models import ProjectSettings, ScriptSettings, VideoScript
from shorts_pipeline.render.cards import draw_title_card
from shorts_pipeline.render.errors import ProbeError
from shorts_pipeline.render.inspect import inspect_video
from shorts_pipeline.render.probe import probe_clip
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import LocalLibrarySource, SearchOutcome
from shorts_pipeline.resources.llm import ScriptWriterResource
from tests.bad_inputs import (
    BROKEN,
    HOSTILE_TITLES,
    ODD,
    BadInput,
    catalog_of,
    make_bad_input_library,
)
from tests.helpers import fast_settings, materialize_project, project_resources


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bad_input_library(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module")
def library_search(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> SearchOutcome:
    """One search of the corpus by the real library source (it probes every file)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SHORTS_HOME", str(tmp_path_factory.mktemp("search-home")))
        return LocalLibrarySource(directory=str(corpus)).search(["football"], limit=50)


def by_file(items: tuple[BadInput, ...]) -> dict[str, BadInput]:
    return {item.file: item for item in items}


# --- (a) every file through the library source and the probe --------------------------------


def test_the_corpus_is_a_library_whose_catalog_says_what_to_expect(corpus: Path) -> None:
    entries = catalog_of(corpus)
    files = sorted(p.name for p in corpus.iterdir() if p.name != "catalog.json")
    assert sorted(e["file"] for e in entries) == files
    assert {e["file"] for e in entries if e["expect"]["accepted"]} == set(by_file(ODD))
    assert not [p for p in corpus.iterdir() if p.name.startswith(".")], "scratch files left"
    # Small, except the inputs that are about size or length.
    sizes = {p.name: p.stat().st_size for p in corpus.iterdir()}
    assert all(size < 400_000 for name, size in sizes.items() if "long" not in name)


@pytest.mark.parametrize("item", BROKEN, ids=lambda item: item.file)
def test_a_broken_file_is_skipped_with_its_own_reason(
    item: BadInput, corpus: Path, library_search: SearchOutcome
) -> None:
    skipped = dict(library_search.skipped)
    assert item.file in skipped, f"{item.file} was not skipped"
    reason = skipped[item.file]
    for word in item.reason:
        assert word.lower() in reason.lower(), (word, reason)
    assert item.id not in {c.id for c in library_search.candidates}

    with pytest.raises(ProbeError) as refused:
        probe_clip(corpus / item.file)
    assert refused.value.reason == reason
    assert str(corpus / item.file) in str(refused.value)  # the message names the file


def test_every_broken_file_has_a_different_reason(library_search: SearchOutcome) -> None:
    reasons = dict(library_search.skipped)
    assert len({reasons[item.file] for item in BROKEN}) == len(BROKEN)


@pytest.mark.parametrize("item", ODD, ids=lambda item: item.file)
def test_an_odd_clip_is_accepted_and_probed_as_it_really_is(
    item: BadInput, corpus: Path, library_search: SearchOutcome
) -> None:
    candidates = {c.id: c for c in library_search.candidates}
    assert item.id in candidates, dict(library_search.skipped).get(item.file)
    candidate = candidates[item.id]
    info = probe_clip(corpus / item.file)
    shape = item.shape

    assert [info.display_width, info.display_height] == shape["display"]
    assert [candidate.width, candidate.height] == shape["display"]
    assert candidate.title == item.title  # hostile titles reach the candidate unchanged
    assert info.rotation == shape.get("rotation", 0)
    assert info.sar == Fraction(shape.get("sar", "1"))
    assert info.variable_frame_rate is shape.get("vfr", False)
    if "codec" in shape:
        assert info.video_codec == shape["codec"]
    if "pix_fmt" in shape:
        assert info.pix_fmt == shape["pix_fmt"]
    if "audio" in shape:
        assert info.audio_codec == shape["audio"]
    if "audio_rate" in shape:
        assert info.audio_rate == shape["audio_rate"]
    if "channels" in shape:
        assert info.audio_channels == shape["channels"]
    assert info.duration == pytest.approx(shape.get("duration", info.duration), abs=0.2)


# --- (b) one ranking over good and broken clips ---------------------------------------------


@pytest.mark.slow
def test_a_ranking_over_good_and_broken_clips_renders_and_names_every_broken_one(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every file path the render reads lives under SHORTS_HOME: one full of filter-graph
    # syntax shows they travel as arguments, never inside a filter string.
    shorts_home = tmp_path / "home it's [0:v];a,b=c:d\\e"
    shorts_home.mkdir()
    monkeypatch.setenv("SHORTS_HOME", str(shorts_home))
    # Title and keywords full of filter-graph syntax: they must reach Pillow, never ffmpeg.
    spec = CatalogResource().add_project(
        HOSTILE_TITLES["filter_syntax"],
        keywords=["football", "skills: 'top' [0:v]; a,b \\ c"],
        settings=fast_settings(
            count=len(ODD),
            clip_min_seconds=1.0,
            clip_max_seconds=1.0,
            title_seconds=0.5,
            outro_seconds=0.5,
            transition="none",
        ),
    )
    result = materialize_project(spec.key, project_resources(corpus), raise_on_error=False)

    assert result.success, [str(e.event_specific_data) for e in result.all_events if e.is_failure]
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [
        (c.check_name, c.metadata) for c in checks if not c.passed
    ]
    materialized = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    skipped = str(materialized["search_results"].materialization.metadata["skipped"].value)
    for item in BROKEN:
        row = next((line for line in skipped.splitlines() if item.file in line), None)
        assert row is not None, f"{item.file} missing from the skipped table"
        assert item.reason[0].lower() in row.lower(), row

    selections = result.output_for_node("selections")
    chosen = {c.candidate.id for c in selections.clips}
    assert chosen == {item.id for item in ODD}, "every usable clip, and only those"
    assert not chosen & {item.id for item in BROKEN}

    video = result.output_for_node("video")
    facts = inspect_video(shorts_home / "media" / video.media_key)
    assert (facts.width, facts.height, facts.fps) == (1080, 1920, 30)
    assert facts.duration == pytest.approx(video.duration, abs=0.1)


# --- (c) hostile titles ----------------------------------------------------------------------


def tree(root: Path, skip: Path | None = None) -> set[str]:
    """Every path under `root` (files and folders), relative, leaving out `skip`."""
    found = set()
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if skip is not None and (here == skip or skip in here.parents):
            dirs[:] = []
            continue
        found |= {str((here / name).relative_to(root)) for name in [*dirs, *files]}
    return found


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp folder of this test's own (so its listing is not shared with other tests) and
    an empty working folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield folder


def ink_pixels(card: Path, blank: Path) -> int:
    """Pixels where `card` differs from the same card without its title."""
    diff = ImageChops.difference(Image.open(card).convert("RGB"), Image.open(blank).convert("RGB"))
    return sum(1 for value in diff.convert("L").getdata() if value > 40)


def test_hostile_titles_get_safe_keys_and_cards_and_write_only_in_shorts_home(
    shorts_home: Path, tmp_path: Path, private_tmp: Path
) -> None:
    before = tree(tmp_path, skip=shorts_home)
    cards = shorts_home / "cards"
    blank = Path(draw_title_card(cards / "blank.png", "", "Top 5"))

    for name, title in HOSTILE_TITLES.items():
        added = CliRunner().invoke(main, ["add", title, "--json"], catch_exceptions=False)

        assert added.exit_code == 0, (name, added.output)
        spec = json.loads(added.output)
        key = spec["key"]
        assert validate_project_key(key) == key, name
        assert key == project_key(" ".join(title.split()), "ranking"), name
        assert spec["title"] == " ".join(title.split()), name  # as given: not escaped, not cut
        assert CatalogResource().get_project(key).title == spec["title"], name
        card = Path(draw_title_card(cards / f"{key}.png", spec["title"], "Top 5"))
        assert card.parent == cards and card.is_file(), name
        assert ink_pixels(card, blank) > 2000, f"the title {name} left no ink on its card"

    assert tree(tmp_path, skip=shorts_home) == before, "something was written outside SHORTS_HOME"
    for path in shorts_home.rglob("*"):
        assert path.resolve().is_relative_to(shorts_home.resolve())
        assert ".." not in path.relative_to(shorts_home).parts
    listed = CliRunner().invoke(main, ["status", "--json"], catch_exceptions=False)
    assert listed.exit_code == 0
    assert len(json.loads(listed.output)) == len(HOSTILE_TITLES)


@pytest.mark.parametrize("fmt", ["explainer", "extend"])
@pytest.mark.parametrize("name", list(HOSTILE_TITLES))
def test_the_offline_writer_takes_a_hostile_title_as_text_never_as_a_template(
    name: str, fmt: str
) -> None:
    title = HOSTILE_TITLES[name]
    spec = CatalogResource().add_project(title, fmt)

    script = ScriptWriterResource().write(spec).script

    assert script.title == spec.title[:300]
    said = " ".join(scene.narration for scene in script.scenes())
    if name == "format_strings":  # neither str.format nor % touched it (the spoken form
        # drops Markdown's `__` emphasis: "{__class__}" is read "{class}")
        assert "{0}" in said and "%(x)s" in said and "{class}" in said
    assert "<class" not in said and "None" not in said


def test_hostile_titles_give_distinct_keys() -> None:
    keys = {project_key(t, f) for t in HOSTILE_TITLES.values() for f in ("ranking", "explainer")}
    assert len(keys) == 2 * len(HOSTILE_TITLES)


# What a shell would run ($(...), `...`) creates `pwned` in the working folder.
SHELL_LINE = HOSTILE_TITLES["shell"] + " $(touch pwned) `touch pwned`"
LITERAL_LINE = "{like this}, back\\slash, %(x)s {0}"


@pytest.mark.slow
def test_an_explainer_full_of_shell_and_format_syntax_is_spoken_and_shown_as_written(
    clip_library: Path, shorts_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = CatalogResource().add_project(
        HOSTILE_TITLES["shell"],
        "explainer",
        settings=ProjectSettings(
            script=ScriptSettings(target_seconds=8),
            broll=False,
            music=None,
            transition_seconds=0.3,
            slide_style="basic",
            scene_pad_seconds=0.2,
        ),
    )
    # The creator's own script (as `shorts script --edit` gives it): short, so the render is.
    edited = VideoScript(
        title=HOSTILE_TITLES["shell"],
        chapters=[
            {
                "title": HOSTILE_TITLES["format_strings"],
                "scenes": [
                    {"narration": SHELL_LINE, "on_screen_text": HOSTILE_TITLES["html"]},
                    {"narration": LITERAL_LINE, "on_screen_text": HOSTILE_TITLES["filter_syntax"]},
                ],
            }
        ],
    )

    result = materialize_project(
        spec.key,
        project_resources(clip_library),
        raise_on_error=False,
        run_config={"ops": {"script": {"config": {"script_json": edited.model_dump_json()}}}},
    )

    assert result.success, [str(e.event_specific_data) for e in result.all_events if e.is_failure]
    checks = result.get_asset_check_evaluations()
    assert all(c.passed for c in checks), [
        (c.check_name, c.metadata) for c in checks if not c.passed
    ]
    assert not (tmp_path / "pwned").exists(), "text reached a shell"
    narration = result.output_for_node("narration")
    spoken = [s for s in narration.scenes if s.text]
    assert len(spoken) == 2, "espeak-ng spoke both lines"
    assert all(s.words and s.duration > 0.5 for s in spoken), "espeak-ng choked"
    heard = " ".join(s.text for s in spoken)
    for literal in ("$(rm -rf", "$(touch pwned)", "{like this}", "back\\slash", "%(x)s", "{0}"):
        assert literal in heard, literal

    video = result.output_for_node("video")
    srt = (shorts_home / "media" / video.subtitles_key).read_text("utf-8")
    shown = " ".join(
        line
        for line in srt.splitlines()
        if line.strip() and not line.isdigit() and "-->" not in line
    )
    expected = " ".join(spoken_text(line) for line in (SHELL_LINE, LITERAL_LINE))
    assert re.sub(r"\s+", " ", shown) == re.sub(r"\s+", " ", expected)
    assert "{like this}" in shown and "back\\slash" in shown
