"""new_titles_sensor: every project added to the catalog gets its partition and its run."""

from __future__ import annotations

import dagster as dg

from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.resources.catalog import CatalogResource

# Projects taken per tick: a burst of titles is spread over ticks instead of one huge request.
MAX_PROJECTS_PER_TICK = 20


@dg.sensor(
    job_name="produce_project",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Starts the production run of every project added to the catalog (`shorts add`), "
        "after its partition is added. The cursor is the catalog's high-water mark, so titles "
        "added while the daemon was down are picked up on the next tick and none twice."
    ),
)
def new_titles_sensor(
    context: dg.SensorEvaluationContext, catalog: CatalogResource
) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor or 0)
    projects = catalog.list_projects(after_seq=after, limit=MAX_PROJECTS_PER_TICK)
    if not projects:
        return dg.SkipReason(f"no project added since #{after}")
    last = max(catalog.project_seq(p.key) for p in projects)
    keys = [p.key for p in projects]
    return dg.SensorResult(
        run_requests=[
            # run_key: the sensor never launches the same project's first render twice.
            dg.RunRequest(
                partition_key=key, run_key=f"produce:{key}", tags={"shorts/source": "sensor"}
            )
            for key in keys
        ],
        dynamic_partitions_requests=[project_partitions.build_add_request(keys)] if keys else [],
        cursor=str(last),
    )
