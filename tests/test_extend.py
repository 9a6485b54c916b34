"""Extend videos end to end: storyboard offline, fal.ai through its queue protocol (local
server), resume after a failed segment, colour matching and seamless joints."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from shorts_pipeline.models import (
    ExtendSettings,
    ProjectSettings,
    ScriptSettings,
    SegmentSet,
    SlideSet,
    VideoRecord,
)
from shorts_pipeline.render.continuity import colour_distance, frame_differences, read_frames
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.video_gen import VideoGenResource
from tests.fal_server import FAL_TEST_KEY, FalServer
from tests.helpers import materialize_project, project_resources

pytestmark = pytest.mark.slow


@pytest.fixture
def fal_server():
    server = FalServer().start()
    yield server
    server.stop()


def add_extend(title: str, source_text: str | None = None, **extend: object) -> str:
    settings = ProjectSettings(
        narration=bool(extend.pop("narration", False)),
        script=ScriptSettings(),
        extend=ExtendSettings(**{"segment_count": 3, "segment_seconds": 2.0, **extend}),  # type: ignore[arg-type]
    )
    spec = CatalogResource().add_project(
        title, "extend", settings=settings, source_text=source_text
    )
    return spec.key


def run(key: str, tmp_path: Path, instance: dg.DagsterInstance, **resources: object):
    return materialize_project(
        key,
        {**project_resources(tmp_path / "library"), **resources},
        instance,
        raise_on_error=False,
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "expected a failed step"
    data = failures[0].step_failure_data
    return (data.user_failure_data.description if data.user_failure_data else "") + str(data.error)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def seam_times(segments: SegmentSet, seam: float) -> list[float]:
    """Where each joint's crossfade starts on the output timeline."""
    times, t = [], 0.0
    for seg in segments.segments[:-1]:
        t += seg.end - seg.start - seam
        times.append(t)
    return times


def test_storyboard_extend_renders_offline_with_labels_voice_and_clean_joints(
    tmp_path: Path,
) -> None:
    key = add_extend(
        "A paper boat drifting down a rainy street at dusk",
        narration=True,
        segment_count=3,
        segment_seconds=2.5,
    )
    instance = dg.DagsterInstance.ephemeral()
    result = run(key, tmp_path, instance)
    assert result.success, failure_text(result)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]

    segments: SegmentSet = result.asset_value("segments")
    assert segments.storyboard and segments.provider == "storyboard"
    assert [s.index for s in segments.segments] == [0, 1, 2]
    assert segments.segments[0].reference_key is None
    for before, after in zip(segments.segments, segments.segments[1:], strict=False):
        assert after.reference_key == before.next_reference_key
        assert after.start > 0  # the frame repeating the reference is skipped
        # Cut where the next one continues: its reference frame, then the seam's frames.
        assert before.end <= before.duration + 1e-6
    slides: SlideSet = result.asset_value("slides")
    assert sorted(slides.captions) == [0, 1, 2]

    record: VideoRecord = result.asset_value("video")
    store = MediaStoreResource()
    video = store.local_path(record.media_key)
    probe = ffprobe(video)
    v = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert (v["width"], v["height"]) == (1080, 1920)
    seam = ExtendSettings().seam_seconds
    expected = sum(s.end - s.start for s in segments.segments) - seam * 2
    assert abs(float(probe["format"]["duration"]) - expected) < 0.1
    assert record.subtitles_key is not None  # narrated: subtitles are burned in and beside it
    assert store.local_path(record.subtitles_key).read_text(encoding="utf-8").count("-->") >= 3

    # No frame is shown twice and the motion never stops, at the joints or anywhere else.
    diffs = frame_differences(video)
    assert diffs.min() > 0.2, f"a frame repeats at {np.argmin(diffs) / 30:.2f} s"
    for t in seam_times(segments, seam):
        around = diffs[int(t * 30) - 3 : int((t + seam) * 30) + 3]
        assert around.min() > 0.2


def test_fal_extend_resumes_at_the_failed_segment_and_stops_colour_drift(
    tmp_path: Path, fal_server: FalServer
) -> None:
    fal_server.drift = (10.0, 0.0, -10.0)  # every generation adds a warm cast, like real models
    # Colour noise keeps its statistics under the server's zoom: what changes is the cast.
    fal_server.pattern = "color=c=0x708090:s={w}x{h}:r={fps},noise=alls=60:allf=t"
    fal_server.reject_prompts_containing = "forbidden"
    beats = (
        "A paper boat sets off on a puddle. The boat spins in the current. "
        "The boat passes a forbidden gate. The boat sails into the light."
    )
    key = add_extend(
        "A paper boat",
        source_text=beats,
        provider="fal",
        segment_count=4,
        segment_seconds=2.0,
        fal_arguments={"resolution": "360p"},  # passed through to the model; small and quick
    )
    gen = VideoGenResource(
        fal_key=FAL_TEST_KEY, fal_queue_url=fal_server.base_url, poll_interval=0.02
    )
    instance = dg.DagsterInstance.ephemeral()

    first = run(key, tmp_path, instance, video_gen=gen)
    assert not first.success
    text = failure_text(first)
    assert "segment 3/4" in text and "content" in text.lower()
    assert FAL_TEST_KEY not in text
    assert len(fal_server.submits()) == 3
    # Segments 1 and 2 were stored the moment each was done.
    folder = MediaStoreResource().local_path(f"projects/{key}/segments")
    assert sorted(p.name[:2] for p in folder.glob("*.json")) == ["01", "02"]

    fal_server.reject_prompts_containing = None
    second = run(key, tmp_path, instance, video_gen=gen)
    assert second.success, failure_text(second)
    assert len(fal_server.submits()) == 3 + 2  # segments 3 and 4 only: 1 and 2 were kept
    segments: SegmentSet = second.asset_value("segments")
    assert [s.reused for s in segments.segments] == [True, True, False, False]
    # Image-to-video requests (2, the refused 3, 3 and 4) carried the previous segment's
    # frame as a data URI.
    later = [r for r in fal_server.submits() if "image-to-video" in r.path]
    assert all(r.body["resolution"] == "360p" for r in fal_server.submits())
    assert len(later) == 4 and all(
        str(r.body["image_url"]).startswith("data:image/jpeg;base64,") for r in later
    )

    # Without matching, the cast would grow by one step per hop (k steps at segment k+1);
    # matched references keep every segment one step from segment 1, and the render's
    # colour match takes that step away.
    drift = [s.drift_before for s in segments.segments[1:]]
    assert max(drift) < 1.3 * min(drift), drift
    assert all(s.drift_after < 1.5 for s in segments.segments)
    record: VideoRecord = second.asset_value("video")
    video = MediaStoreResource().local_path(record.media_key)
    starts = [0.0]
    for s in segments.segments[:-1]:
        starts.append(starts[-1] + s.end - s.start - ExtendSettings().seam_seconds)
    means = [
        read_frames(video, start=t + 0.5, duration=0.2).reshape(-1, 3).mean(axis=0) for t in starts
    ]
    shifts = [colour_distance(m, means[0]) for m in means[1:]]
    assert max(shifts) < 3.0, shifts


def test_fal_segments_of_the_wrong_size_and_length_are_normalised_to_a_landscape_video(
    tmp_path: Path, fal_server: FalServer
) -> None:
    fal_server.size = (720, 1280)  # portrait, for a 16:9 project
    fal_server.seconds_override = 4.0  # twice the length asked for
    key = add_extend("A lighthouse at night", provider="fal", segment_count=2, aspect="16:9")
    gen = VideoGenResource(
        fal_key=FAL_TEST_KEY, fal_queue_url=fal_server.base_url, poll_interval=0.02
    )
    result = run(key, tmp_path, dg.DagsterInstance.ephemeral(), video_gen=gen)
    assert result.success, failure_text(result)
    assert {r.body["aspect_ratio"] for r in fal_server.submits()} == {"16:9"}
    segments: SegmentSet = result.asset_value("segments")
    for seg in segments.segments:
        assert (seg.width, seg.height) == (1280, 720)
        assert abs(seg.duration - 2.0) < 0.1
        assert any("cover-cropped" in n for n in seg.notes)
        assert any("cut to length" in n for n in seg.notes)
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [(c.check_name, c.metadata) for c in checks]
    record: VideoRecord = result.asset_value("video")
    probe = ffprobe(MediaStoreResource().local_path(record.media_key))
    v = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert (v["width"], v["height"]) == (1920, 1080)


def test_extend_without_a_fal_key_fails_with_the_fix(tmp_path: Path) -> None:
    key = add_extend("A lighthouse at night", provider="fal", segment_count=2)
    result = run(key, tmp_path, dg.DagsterInstance.ephemeral())
    assert not result.success
    text = failure_text(result)
    assert "segment 1/2" in text and "FAL_KEY" in text and "storyboard" in text
