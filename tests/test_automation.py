"""Sensors, the publish schedule and exactly-once publishing, with the real Dagster machinery
(build_sensor_context, build_schedule_context, materialize) and the real local channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from shorts_pipeline.assets import production_assets
from shorts_pipeline.assets.publication import publication
from shorts_pipeline.models import ProjectStatus, VideoScript
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.channel import LocalChannelPublisher
from shorts_pipeline.resources.youtube import YouTubePublisher
from shorts_pipeline.schedules import publish_schedule
from shorts_pipeline.sensors.changes import project_changes_sensor
from shorts_pipeline.sensors.new_titles import MAX_PROJECTS_PER_TICK, new_titles_sensor
from tests.helpers import fast_settings, project_resources

# Schedule ticks travel in time, but the publication asset checks the real clock too, so the
# publish times are in the recent past.
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
SEOUL = timezone(timedelta(hours=9))


def sensor_tick(sensor, instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"catalog": CatalogResource()}
    )
    return sensor(context)


def schedule_tick(instance, when: datetime):
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, resources={"catalog": CatalogResource()}
    )
    return publish_schedule(context)


def test_new_titles_sensor_follows_a_high_water_mark():
    instance = dg.DagsterInstance.ephemeral()
    catalog = CatalogResource()
    first = [catalog.add_project(f"Title {i}", keywords=["football"]).key for i in range(3)]
    first.append(catalog.add_project("A paper boat", "extend").key)  # every format renders

    result = sensor_tick(new_titles_sensor, instance)
    assert [r.partition_key for r in result.run_requests] == first
    assert [r.run_key for r in result.run_requests] == [f"produce:{k}" for k in first]
    [partitions] = result.dynamic_partitions_requests
    assert list(partitions.partition_keys) == first
    cursor = result.cursor

    again = sensor_tick(new_titles_sensor, instance, cursor)
    assert isinstance(again, dg.SkipReason)  # nothing new: nothing launched twice

    # Titles added while the daemon was down: picked up next tick, bounded per tick.
    burst = [catalog.add_project(f"Burst {i}").key for i in range(MAX_PROJECTS_PER_TICK + 3)]
    tick = sensor_tick(new_titles_sensor, instance, cursor)
    assert [r.partition_key for r in tick.run_requests] == burst[:MAX_PROJECTS_PER_TICK]
    rest = sensor_tick(new_titles_sensor, instance, tick.cursor)
    assert [r.partition_key for r in rest.run_requests] == burst[MAX_PROJECTS_PER_TICK:]


def test_change_sensor_re_renders_only_what_changed_and_not_what_the_cli_ran():
    instance = dg.DagsterInstance.ephemeral()
    catalog = CatalogResource()
    a = catalog.add_project("A", "explainer").key
    b = catalog.add_project("B").key
    script = VideoScript(title="A", chapters=[{"title": "c", "scenes": [{"narration": "Hi."}]}])
    catalog.set_script_override(a, script)  # by hand: the sensor re-renders
    catalog.set_script_override(a, script, handled=True)  # the CLI rendered it itself
    catalog.set_selection(b, ["x", "y"])
    result = sensor_tick(project_changes_sensor, instance)
    by_key = {r.partition_key: r for r in result.run_requests}
    assert set(by_key) == {a, b}
    assert [k.path[-1] for k in by_key[a].asset_selection] == [
        "script",
        "narration",
        "slides",
        "segments",
        "video",
        "upload",
    ]
    assert by_key[b].asset_selection[0] == dg.AssetKey("selections")
    assert isinstance(sensor_tick(project_changes_sensor, instance, result.cursor), dg.SkipReason)


def render(key: str, library: Path, instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions("project", [key])
    result = dg.materialize(
        production_assets,
        partition_key=key,
        instance=instance,
        resources=project_resources(library),
    )
    assert result.success


def publish(key: str, library: Path, instance: dg.DagsterInstance, channel_dir: Path):
    resources = {
        **project_resources(library),
        "local_channel": LocalChannelPublisher(directory=str(channel_dir)),
        "youtube": YouTubePublisher(),
    }
    return dg.materialize(
        [*production_assets, publication],
        selection=[publication],
        partition_key=key,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )


@pytest.mark.slow
def test_schedule_publishes_each_due_video_once_even_when_retried(
    clip_library, shorts_home, tmp_path
):
    instance = dg.DagsterInstance.ephemeral()
    catalog = CatalogResource()
    channel = tmp_path / "channel"
    early = catalog.add_project(
        "Early", keywords=["football"], settings=fast_settings(), publish_at=T0
    )
    # Given in Seoul time (T0 + 30 min, written with +09:00): the offset is respected.
    seoul = (T0 + timedelta(minutes=30)).astimezone(SEOUL).isoformat()
    assert seoul.endswith("+09:00")
    late = catalog.add_project(
        "Late",
        keywords=["football"],
        settings=fast_settings(),
        publish_at=datetime.fromisoformat(seoul),
    )
    reviewed = catalog.add_project(
        "Reviewed", keywords=["football"], settings=fast_settings(), publish_at=T0, review=True
    )
    for spec in (early, late, reviewed):
        render(spec.key, clip_library, instance)
        assert catalog.get_project(spec.key).status is ProjectStatus.uploaded

    assert isinstance(schedule_tick(instance, T0 - timedelta(minutes=1)), dg.SkipReason)
    due = schedule_tick(instance, T0)
    assert [r.partition_key for r in due] == [early.key]  # Late not yet, Reviewed unapproved
    run_key = due[0].run_key
    assert [r.run_key for r in schedule_tick(instance, T0)] == [run_key]  # a retried tick

    first = publish(early.key, clip_library, instance, channel)
    assert first.success
    record = first.output_for_node("publication")
    # The run is retried (a crash after publishing, a second daemon): no second publication.
    second = publish(early.key, clip_library, instance, channel)
    assert second.success and second.output_for_node("publication") == record
    feed = json.loads((channel / "feed.json").read_text())
    assert [i["title"] for i in feed["items"]] == ["Early"]
    assert catalog.get_project(early.key).status is ProjectStatus.published
    assert isinstance(schedule_tick(instance, T0 + timedelta(minutes=1)), dg.SkipReason)

    # T0 + 30 min comes: Late is due; Reviewed still waits for its approval.
    assert [r.partition_key for r in schedule_tick(instance, T0 + timedelta(minutes=30))] == [
        late.key
    ]
    unapproved = publish(reviewed.key, clip_library, instance, channel)
    assert not unapproved.success
    catalog.set_review(reviewed.key, "rejected", by="editor", reason="wrong music")
    assert catalog.review(reviewed.key).reason == "wrong music"
    catalog.set_review(reviewed.key, "approved", by="editor")
    keys = [r.partition_key for r in schedule_tick(instance, T0 + timedelta(minutes=30))]
    assert keys == [late.key, reviewed.key]
    assert publish(late.key, clip_library, instance, channel).success
    assert publish(reviewed.key, clip_library, instance, channel).success
    feed = json.loads((channel / "feed.json").read_text())
    assert sorted(i["title"] for i in feed["items"]) == ["Early", "Late", "Reviewed"]


def test_a_failed_attempt_is_retried_at_the_next_tick_with_a_new_run_key():
    catalog = CatalogResource()
    instance = dg.DagsterInstance.ephemeral()
    spec = catalog.add_project("Retry me", publish_at=T0)
    catalog.set_status(spec.key, ProjectStatus.uploaded)
    [first] = schedule_tick(instance, T0)
    claim = catalog.claim_publication(f"{spec.key}@local", spec.key, "local")
    assert claim.attempts == 1
    # While the attempt runs, the schedule does not start another.
    assert isinstance(schedule_tick(instance, T0 + timedelta(minutes=1)), dg.SkipReason)
    catalog.fail_publication(f"{spec.key}@local", "quota exceeded")
    [retry] = schedule_tick(instance, T0 + timedelta(minutes=2))
    assert retry.run_key != first.run_key
