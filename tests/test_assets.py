"""The ranking graph materialised with real Dagster, real clips and real ffmpeg."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from shorts_pipeline.models import ProjectStatus
from shorts_pipeline.render.inspect import inspect_video
from shorts_pipeline.render.synth import make_empty_file, make_text_as_mp4, make_truncated_mp4
from shorts_pipeline.resources.catalog import CatalogResource
from tests.helpers import fast_settings, materialize_project, project_resources

pytestmark = pytest.mark.slow

FAST = fast_settings()


def materialize(
    key: str, library: Path, instance: dg.DagsterInstance, **kwargs
) -> dg.ExecuteInProcessResult:
    return materialize_project(
        key, project_resources(library), instance, raise_on_error=False, **kwargs
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "expected a failed step"
    data = failures[0].step_failure_data
    return (data.user_failure_data.description if data.user_failure_data else "") + str(data.error)


def test_ranking_project_end_to_end(clip_library, shorts_home):
    catalog = CatalogResource()
    spec = catalog.add_project(
        "Top football skills ⚽ 축구", keywords=["football", "skills"], settings=FAST
    )
    result = materialize(spec.key, clip_library, dg.DagsterInstance.ephemeral())
    assert result.success

    frame = result.output_for_node("search_results")
    assert {"id", "title", "views", "likes", "duration", "width", "height"} <= set(frame.columns)
    assert "cats" not in set(frame["id"])

    chosen = result.output_for_node("selections")
    assert [c.rank for c in chosen.clips] == [1, 2, 3]
    scores = [c.score for c in chosen.clips]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    assert all(c.trim_seconds == pytest.approx(1.5) for c in chosen.clips)

    video = result.output_for_node("video")
    path = shorts_home / "media" / video.media_key
    facts = inspect_video(path)
    assert (facts.width, facts.height, facts.fps) == (1080, 1920, 30)
    # 1 + 3 x 1.5 + 1 seconds, minus four 0.4 s crossfades
    assert facts.duration == pytest.approx(6.5 - 4 * 0.4, abs=0.07)
    assert facts.loudness.integrated_lufs == pytest.approx(-14, abs=1)

    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {
        "resolution",
        "frame_rate_30",
        "duration_within_limit",
        "duration_matches_plan",
        "has_audio",
        "loudness_minus_14_lufs",
        "true_peak_below_minus_1_dbtp",
        "audio_video_durations_match",
        "no_black_segments",
        "no_frozen_segments",
        "no_silent_gaps",
        "text_inside_safe_area",
        "faststart",
        "h264_yuv420p",
        "h264_high_profile",
        "selected_clips_decodable",
        "speech_length_near_target",
        "narration_fits_plan",
    }
    assert all(c.passed for c in checks), [
        (c.check_name, c.metadata) for c in checks if not c.passed
    ]

    with Image.open(shorts_home / "media" / video.thumbnail_key) as thumb:
        assert thumb.size == (1080, 1920)
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    thumb_md = mats["video"].materialization.metadata["thumbnail"].value
    assert thumb_md.startswith("![preview](data:image/jpeg;base64,") and len(thumb_md) < 12_000
    assert (
        "data:image/jpeg;base64," in mats["slides"].materialization.metadata["contact_sheet"].value
    )

    upload = result.output_for_node("upload")
    uploaded = Path(upload.url.removeprefix("file://"))
    assert uploaded.read_bytes() == path.read_bytes()
    assert uploaded.name.startswith("top-football-skills")
    assert catalog.get_project(spec.key).status is ProjectStatus.uploaded


def test_manual_selection_wins_and_a_stage_reruns_alone(clip_library, shorts_home, tmp_path):
    catalog = CatalogResource()
    spec = catalog.add_project("Manual picks", keywords=["football"], settings=FAST)
    catalog.set_selection(spec.key, ["rotated", "square"])
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = materialize(spec.key, clip_library, instance)
        assert first.success
        chosen = first.output_for_node("selections")
        assert [(c.rank, c.candidate.id) for c in chosen.clips] == [(1, "rotated"), (2, "square")]
        assert chosen.manual
        video_path = shorts_home / "media" / first.output_for_node("video").media_key
        before = video_path.stat().st_mtime_ns

        # A changed setting re-renders, alone: upstream results are reused.
        catalog.update_settings(spec.key, FAST.model_copy(update={"music_db": -20.0}))
        again = materialize(spec.key, clip_library, instance, selection=["video"])
        assert again.success
        ran = {e.step_key for e in again.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert ran == {"video"}
        assert video_path.stat().st_mtime_ns > before
        assert metadata_of(again, "video")["reused"] is False


def test_an_unchanged_project_reuses_its_clips_slides_and_video_and_any_change_renders_again(
    library_copy, shorts_home, monkeypatch
):
    """The second run of an unchanged project fetches, probes, draws, renders and scans
    nothing, yet reports the same video, metadata and checks; a changed setting, a changed
    input file or SHORTS_REUSE=off make the video again."""
    catalog = CatalogResource()
    spec = catalog.add_project("Reused", keywords=["football"], settings=FAST)
    instance = dg.DagsterInstance.ephemeral()
    first = materialize(spec.key, library_copy, instance)
    assert first.success
    video_path = shorts_home / "media" / first.output_for_node("video").media_key
    sheet = shorts_home / "media" / first.output_for_node("slides").contact_sheet
    made = video_path.stat().st_mtime_ns, sheet.stat().st_mtime_ns
    assert metadata_of(first, "selections")["clips_fetched"] == 3
    assert metadata_of(first, "video")["reused"] is False

    second = materialize(spec.key, library_copy, instance)
    assert second.success
    assert (video_path.stat().st_mtime_ns, sheet.stat().st_mtime_ns) == made
    assert metadata_of(second, "selections")["clips_fetched"] == 0
    assert metadata_of(second, "selections")["clips_reused"] == 3
    assert metadata_of(second, "slides")["reused"] is True
    video = metadata_of(second, "video")
    assert video["reused"] is True
    shown = {k: v for k, v in metadata_of(first, "video").items() if k != "reused"}
    assert {k: v for k, v in video.items() if k != "reused"} == shown
    assert second.output_for_node("video") == first.output_for_node("video")
    checks = second.get_asset_check_evaluations()
    assert len(checks) == 18 and all(c.passed for c in checks)
    assert {c.check_name: c.metadata for c in checks} == {
        c.check_name: c.metadata for c in first.get_asset_check_evaluations()
    }

    # A clip file rewritten in the library is fetched and probed again (same content: the
    # video is still the same one). A new file, not a write: the clips are hard links.
    clip = library_copy / f"{first.output_for_node('selections').clips[0].candidate.id}.mp4"
    data = clip.read_bytes()
    clip.unlink()
    clip.write_bytes(data)
    third = materialize(spec.key, library_copy, instance, selection=["selections"])
    assert metadata_of(third, "selections")["clips_fetched"] == 1

    # An input file of the render changes: the video is made again.
    badge = shorts_home / "media" / first.output_for_node("slides").badges[1]
    with Image.open(badge) as img:
        img.rotate(180).save(badge)
    fourth = materialize(spec.key, library_copy, instance, selection=["video"])
    assert metadata_of(fourth, "video")["reused"] is False
    rendered = video_path.stat().st_mtime_ns
    assert rendered > made[0]

    # A setting changes: the slides are drawn and the video rendered again.
    catalog.update_settings(spec.key, FAST.model_copy(update={"transition": "none"}))
    fifth = materialize(spec.key, library_copy, instance, selection=["slides", "video"])
    assert metadata_of(fifth, "slides")["reused"] is False
    assert metadata_of(fifth, "video")["reused"] is False
    assert fifth.output_for_node("video").duration > first.output_for_node("video").duration
    assert video_path.stat().st_mtime_ns > rendered

    # Nothing changed, but reuse is off: everything is made again.
    monkeypatch.setenv("SHORTS_REUSE", "off")
    sixth = materialize(
        spec.key, library_copy, instance, selection=["selections", "slides", "video"]
    )
    assert metadata_of(sixth, "selections")["clips_fetched"] == 3
    assert metadata_of(sixth, "slides")["reused"] is False
    assert metadata_of(sixth, "video")["reused"] is False


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The plain values of the metadata `asset` recorded in this run."""
    [event] = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in event.metadata.items() if k != "path"}


def test_run_config_selection_for_one_run(clip_library):
    spec = CatalogResource().add_project("Config picks", keywords=["football"], settings=FAST)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(
        spec.key,
        clip_library,
        instance,
        selection=["search_results", "selections"],
        run_config={"ops": {"selections": {"config": {"clip_ids": ["square"]}}}},
    )
    assert result.success
    assert [c.candidate.id for c in result.output_for_node("selections").clips] == ["square"]


def test_broken_clips_are_replaced_with_reasons(library_copy):
    make_truncated_mp4(library_copy / "rabona.mp4", library_copy / "zz-broken.mp4")
    make_empty_file(library_copy / "zz-empty.mp4")
    make_text_as_mp4(library_copy / "zz-text.mp4")
    import json

    entries = json.loads((library_copy / "catalog.json").read_text())
    for name in ("zz-broken", "zz-empty", "zz-text"):
        entries.append(
            {
                "id": name,
                "file": f"{name}.mp4",
                "title": f"Best football skills {name}",
                "views": 99_000_000,
                "likes": 9_000_000,
                "tags": ["football"],
            }
        )
    (library_copy / "catalog.json").write_text(json.dumps(entries))
    spec = CatalogResource().add_project("With broken clips", keywords=["football"], settings=FAST)
    result = materialize(
        spec.key,
        library_copy,
        dg.DagsterInstance.ephemeral(),
        selection=["search_results", "selections"],
    )
    assert result.success
    chosen = result.output_for_node("selections")
    assert len(chosen.clips) == 3
    assert not any(c.candidate.id.startswith("zz-") for c in chosen.clips)
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    skipped = mats["search_results"].materialization.metadata["skipped"].value
    assert "zz-empty.mp4" in skipped and "empty" in skipped
    assert "zz-text.mp4" in skipped and "not a readable media file" in skipped


def test_fewer_usable_clips_than_requested_makes_a_shorter_ranking(clip_library):
    settings = FAST.model_copy(update={"count": 10})
    spec = CatalogResource().add_project("Ask for ten", keywords=["football"], settings=settings)
    result = materialize(
        spec.key,
        clip_library,
        dg.DagsterInstance.ephemeral(),
        selection=["search_results", "selections"],
    )
    assert result.success
    assert len(result.output_for_node("selections").clips) == 4


def test_no_matching_clip_fails_with_the_keyword(clip_library):
    spec = CatalogResource().add_project("Basketball", keywords=["basketball"], settings=FAST)
    result = materialize(spec.key, clip_library, dg.DagsterInstance.ephemeral())
    assert not result.success
    assert "'basketball'" in failure_text(result) and "other keywords" in failure_text(result)


def test_missing_library_folder_fails_clearly(tmp_path):
    spec = CatalogResource().add_project("Nowhere", keywords=["x"], settings=FAST)
    result = materialize(spec.key, tmp_path / "missing", dg.DagsterInstance.ephemeral())
    assert not result.success
    assert "does not exist; run `shorts demo`" in failure_text(result)


def test_every_candidate_broken_fails_with_reasons(tmp_path, clip_library):
    lib = tmp_path / "lib"
    lib.mkdir()
    make_empty_file(lib / "football-a.mp4")
    shutil.copy(clip_library / "rabona.mp4", lib / "football-b.mp4")
    spec = CatalogResource().add_project("All broken", keywords=["football"], settings=FAST)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = materialize(spec.key, lib, instance, selection=["search_results"])
        assert first.success
        assert len(first.output_for_node("search_results")) == 1
        # The clip breaks after the search: the selection must say so, not crash.
        (lib / "football-b.mp4").write_bytes(b"")
        result = materialize(spec.key, lib, instance, selection=["selections"])
    assert not result.success
    text = failure_text(result)
    assert "no usable clip" in text and "football-b: file is empty" in text
