"""project_changes_sensor: a creator's edit re-renders what depends on it.

Why a sensor and not declarative automation: a script edit or a new clip order lives in the
catalog, outside the asset graph; Dagster cannot see it change unless it is modelled as an
observable source asset with a data version, observed on a schedule — a sensor on the
catalog's change log is the same polling with less machinery, and it knows *what* changed,
so it re-runs exactly the stages downstream of it (not the search, when only the words
changed).
"""

from __future__ import annotations

import dagster as dg

from shorts_pipeline.resources.catalog import CatalogResource

MAX_CHANGES_PER_TICK = 50
# What each kind of change re-renders: the changed stage and everything after it.
DOWNSTREAM = {
    "script": ["script", "narration", "slides", "segments", "video", "upload"],
    "selection": ["selections", "script", "narration", "slides", "segments", "video", "upload"],
}


@dg.sensor(
    job_name="produce_project",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Re-renders a project's downstream stages when its script (`shorts script --edit`) or "
        "its clip selection (`shorts select`) is replaced. Follows the catalog's change log by "
        "a high-water mark; edits the CLI already rendered are skipped."
    ),
)
def project_changes_sensor(
    context: dg.SensorEvaluationContext, catalog: CatalogResource
) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor or 0)
    changes = catalog.changes_after(after, limit=MAX_CHANGES_PER_TICK)
    if not changes:
        return dg.SkipReason(f"no change since #{after}")
    # Several edits of one project in one tick need one run: the widest selection wins.
    wanted: dict[str, tuple[int, list[str]]] = {}
    for change in changes:
        if change.handled or change.kind not in DOWNSTREAM:
            continue
        stages = DOWNSTREAM[change.kind]
        seen = wanted.get(change.key)
        if seen is None or len(stages) > len(seen[1]):
            wanted[change.key] = (change.seq, stages)
        else:
            wanted[change.key] = (change.seq, seen[1])
    requests = [
        dg.RunRequest(
            partition_key=key,
            run_key=f"change:{seq}",
            asset_selection=[dg.AssetKey(stage) for stage in stages],
            tags={"shorts/source": "change-sensor"},
        )
        for key, (seq, stages) in wanted.items()
    ]
    return dg.SensorResult(run_requests=requests, cursor=str(changes[-1].seq))
