"""Explainers and narrated rankings, materialised end to end offline with real Dagster, the
real offline writer, real espeak-ng, real libass and real ffmpeg."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from shorts_pipeline.models import ProjectSettings, ScriptSettings, VideoScript
from shorts_pipeline.render.inspect import inspect_video
from shorts_pipeline.render.speech_text import spoken_text, spoken_words
from shorts_pipeline.resources.catalog import CatalogResource
from tests.helpers import fast_settings, frame_at, materialize_project, project_resources

pytestmark = pytest.mark.slow

EN_TEXT = """# Why decorators

A decorator wraps a function to add behaviour. It keeps the original code unchanged.

# How to write one

Write a function that takes a function and returns a new one. Use the at sign above a
definition to apply it. See https://docs.python.org for more 🚀.
"""

KO_TEXT = """# 기초

드리블은 공을 발에 붙여 두고 상대를 지나가는 기술입니다. 작은 터치가 가장 중요합니다.

# 연습

콘을 세우고 지그재그로 통과해 보세요. 양발을 모두 사용하면 더 빨리 늘어요.
"""


def explainer_settings(**overrides) -> ProjectSettings:
    base = dict(
        script=ScriptSettings(target_seconds=14, max_scenes=4),
        transition_seconds=0.3,
        music="bundled",
    )
    return ProjectSettings(**{**base, **overrides})


def run(key: str, library: Path, **kwargs) -> dg.ExecuteInProcessResult:
    return materialize_project(
        key,
        project_resources(library),
        dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,
    )


def failure_text(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "expected a failed step"
    data = failures[0].step_failure_data
    text = (data.user_failure_data.description if data.user_failure_data else "") + str(data.error)
    return failures[0].step_key or "", text


def parse_srt(path: Path) -> list[tuple[float, float, str]]:
    cues = []
    stamp = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        lines = block.splitlines()
        m = re.match(rf"{stamp} --> {stamp}", lines[1])
        assert m, block
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, " ".join(lines[2:])))
    return cues


def assert_checks_pass(result: dg.ExecuteInProcessResult) -> None:
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 18
    assert all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]


def test_explainer_end_to_end_with_voice_subtitles_and_broll(clip_library, shorts_home, tmp_path):
    catalog = CatalogResource()
    spec = catalog.add_project(
        "Python decorators in a minute",
        "explainer",
        keywords=["football"],
        settings=explainer_settings(),
        source_text=EN_TEXT,
    )
    result = run(spec.key, clip_library)
    assert result.success, failure_text(result)
    assert_checks_pass(result)

    script: VideoScript = result.output_for_node("script")
    assert script.writer == "offline" and 2 <= len(script.scenes()) <= 4
    assert all(
        "http" not in s.narration and "🚀" not in spoken_text(s.narration) for s in script.scenes()
    )

    narration = result.output_for_node("narration")
    assert narration.engine == "espeak"
    assert len(narration.scenes) == len(script.scenes())
    assert all(s.words for s in narration.scenes), "espeak-ng gives word timings"
    speech = sum(s.duration for s in narration.scenes)

    video = result.output_for_node("video")
    facts = inspect_video(shorts_home / "media" / video.media_key)
    assert (facts.width, facts.height, facts.fps) == (1080, 1920, 30)
    # Every scene is its narration plus short pauses: the video follows the voice.
    assert speech < facts.duration < speech + 0.9 * len(narration.scenes) + 1.0

    srt = shorts_home / "media" / video.subtitles_key
    cues = parse_srt(srt)
    assert cues
    starts = [c[0] for c in cues]
    assert starts == sorted(starts)
    assert all(a[1] <= b[0] + 1e-3 for a, b in itertools.pairwise(cues)), "no overlap"
    assert all(0 <= s < e <= facts.duration + 0.05 for s, e, _ in cues)
    # Cues follow the voice: each is readable, and together they cover most of the speech.
    assert all(e - s >= 0.3 for s, e, _ in cues), cues
    assert sum(e - s for s, e, _ in cues) >= 0.8 * speech
    heard = [w for s in narration.scenes for w in spoken_words(s.text)]
    shown = [w for _, _, text in cues for w in text.split()]
    assert shown == heard, "the subtitles show exactly the words that are spoken"

    # The subtitle is burned in: a frame in the middle of a cue has white text in the lower
    # part of the safe area, a frame between scenes' words does not need to.
    start, end, _ = cues[0]
    frame = np.asarray(
        frame_at(shorts_home / "media" / video.media_key, (start + end) / 2, tmp_path / "f.png")
    )
    band = frame[1100:1520, 60:940]
    white = ((band > 235).all(axis=2)).sum()
    assert white > 2000, f"expected subtitle ink in the lower safe area, found {white} white pixels"

    upload = result.output_for_node("upload")
    assert upload.subtitles_url and upload.subtitles_url.endswith(".srt")

    slides = result.output_for_node("slides")
    assert len(slides.scenes) == len(script.scenes())
    broll = [v for v in slides.scenes if v.kind == "broll"]
    assert len({v.clip_id for v in broll}) == len(broll), "never the same clip twice"


def test_korean_explainer_has_timed_hangul_subtitles(clip_library, shorts_home):
    spec = CatalogResource().add_project(
        "드리블 연습법",
        "explainer",
        settings=explainer_settings(language="ko", broll=False, slide_style="basic"),
        source_text=KO_TEXT,
    )
    result = run(spec.key, clip_library)
    assert result.success, failure_text(result)
    assert_checks_pass(result)
    script = result.output_for_node("script")
    assert script.language == "ko"
    narration = result.output_for_node("narration")
    assert narration.voice and narration.voice.startswith("ko")
    assert all(s.words for s in narration.scenes)
    video = result.output_for_node("video")
    cues = parse_srt(shorts_home / "media" / video.subtitles_key)
    assert any(re.search("[가-힣]", text) for _, _, text in cues)
    speech = sum(s.duration for s in narration.scenes)
    assert all(e - s >= 0.3 for s, e, _ in cues), cues
    assert sum(e - s for s, e, _ in cues) >= 0.8 * speech
    slides = result.output_for_node("slides")
    assert all(v.kind == "slide" for v in slides.scenes)


def test_narrated_ranking_has_voice_over_clips_and_subtitles(clip_library, shorts_home):
    spec = CatalogResource().add_project(
        "Top football skills", keywords=["football"], settings=fast_settings(narration=True)
    )
    result = run(spec.key, clip_library)
    assert result.success, failure_text(result)
    assert_checks_pass(result)
    script = result.output_for_node("script")
    roles = [s.role for s in script.scenes()]
    assert roles[0] == "intro" and roles[-1] == "outro" and roles.count("clip") == 3
    assert [s.clip_rank for s in script.scenes() if s.role == "clip"] == [3, 2, 1]
    narration = result.output_for_node("narration")
    assert len(narration.scenes) == 5 and all(s.duration > 0.3 for s in narration.scenes)
    video = result.output_for_node("video")
    cues = parse_srt(shorts_home / "media" / video.subtitles_key)
    assert len(cues) >= 5
    assert all(e - s >= 0.3 for s, e, _ in cues), cues
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    assert mats["video"].materialization.metadata["voice_cues"].value == 5


def test_script_replaced_by_run_config_reaches_the_voice(clip_library, shorts_home):
    spec = CatalogResource().add_project(
        "Edited explainer", "explainer", settings=explainer_settings(broll=False)
    )
    edited = VideoScript(
        title="Edited explainer",
        chapters=[{"title": "Only", "scenes": [{"narration": "This line was written by hand."}]}],
    )
    result = run(
        spec.key,
        clip_library,
        run_config={"ops": {"script": {"config": {"script_json": edited.model_dump_json()}}}},
    )
    assert result.success, failure_text(result)
    narration = result.output_for_node("narration")
    assert [s.text for s in narration.scenes] == ["This line was written by hand."]
    assert result.output_for_node("script").writer == "edited"
    # Kept in the catalog: the next run without config uses it too.
    assert CatalogResource().script_override(spec.key).scenes()[0].narration.startswith("This line")


def test_narration_longer_than_the_limit_fails_clearly(clip_library):
    long = " ".join(["This sentence is here to make the narration run long."] * 14)
    spec = CatalogResource().add_project(
        "Too long to speak",
        "explainer",
        settings=explainer_settings(broll=False, max_duration=10),
    )
    edited = VideoScript(title="x", chapters=[{"title": "c", "scenes": [{"narration": long}]}])
    result = run(
        spec.key,
        clip_library,
        run_config={"ops": {"script": {"config": {"script_json": edited.model_dump_json()}}}},
    )
    assert not result.success
    step, text = failure_text(result)
    assert step == "narration"
    assert re.search(r"the narration runs \d+\.\d s .* the video limit is 10 s", text), text


def test_unreachable_llm_fails_the_script_stage_only(clip_library, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-printed")
    spec = CatalogResource().add_project(
        "Needs an LLM",
        "explainer",
        settings=explainer_settings(
            broll=False,
            script=ScriptSettings(
                writer="openai", base_url="http://127.0.0.1:9/v1", timeout_seconds=2
            ),
        ),
    )
    result = run(spec.key, clip_library)
    assert not result.success
    step, text = failure_text(result)
    assert step == "script"
    assert "127.0.0.1:9" in text and "sk-test-never-printed" not in text
    done = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert "narration" not in done and "video" not in done
    assert json.dumps(text)  # printable


def test_silent_explainer_shows_each_scene_as_long_as_reading_it(clip_library, shorts_home):
    from shorts_pipeline.resources.llm import speaking_seconds

    spec = CatalogResource().add_project(
        "Silent explainer",
        "explainer",
        settings=explainer_settings(narration=False, broll=False, slide_style="basic"),
        source_text=EN_TEXT,
    )
    result = run(spec.key, clip_library)
    assert result.success, failure_text(result)
    assert_checks_pass(result)  # music alone still lands at -14 LUFS
    assert result.output_for_node("narration").skipped_reason
    video = result.output_for_node("video")
    assert video.subtitles_key is None
    script = result.output_for_node("script")
    reading = sum(speaking_seconds(spoken_text(s.narration), "en") for s in script.scenes())
    assert reading - 0.5 <= video.duration <= reading + 1.5 * len(script.scenes())


def test_a_replacement_script_with_an_empty_scene_is_refused(clip_library):
    spec = CatalogResource().add_project(
        "Empty scene", "explainer", settings=explainer_settings(broll=False)
    )
    edited = VideoScript(
        title="x",
        chapters=[
            {"title": "c", "scenes": [{"narration": "Fine words."}, {"narration": "🚀 **  **"}]}
        ],
    )
    result = run(
        spec.key,
        clip_library,
        run_config={"ops": {"script": {"config": {"script_json": edited.model_dump_json()}}}},
    )
    assert not result.success
    step, text = failure_text(result)
    assert step == "script" and "scene 2 has no narration to speak" in text


def test_unchanged_narration_is_neither_spoken_nor_joined_again(clip_library, shorts_home):
    from shorts_pipeline.assets import narration, script, search_results, selections

    spec = CatalogResource().add_project(
        "Spoken once", "explainer", settings=explainer_settings(broll=False), source_text=EN_TEXT
    )
    instance = dg.DagsterInstance.ephemeral()
    stages = [search_results, selections, script, narration]
    first = materialize_project(
        spec.key, project_resources(clip_library), instance, selection=stages
    )
    one = first.output_for_node("narration")
    track = shorts_home / "media" / one.track_key
    written = track.stat().st_mtime_ns
    again = materialize_project(
        spec.key, project_resources(clip_library), instance, selection=[narration]
    )
    two = again.output_for_node("narration")
    assert not any(s.cached for s in one.scenes) and all(s.cached for s in two.scenes)
    assert one.track_key == two.track_key and track.stat().st_mtime_ns == written
    assert track.stat().st_size > 10_000
