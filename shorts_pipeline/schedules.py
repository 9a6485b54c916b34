"""publish_schedule: every minute, publish what is due — once."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from shorts_pipeline.assets.publication import due_projects, publication_key
from shorts_pipeline.resources.catalog import CatalogResource

PUBLISHER_NAMES = {"local": "local", "youtube": "youtube"}


@dg.schedule(
    cron_schedule="* * * * *",
    job_name="publish_project",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=(
        "Every minute: publish each uploaded video whose publish time has come (approved "
        "first when its project asks for review). A run key per project and attempt makes a "
        "retried tick harmless; the catalog's publication record makes a retried run resume "
        "instead of publishing twice. A failed attempt is tried again at the next tick."
    ),
)
def publish_schedule(
    context: dg.ScheduleEvaluationContext, catalog: CatalogResource
) -> list[dg.RunRequest] | dg.SkipReason:
    now = context.scheduled_execution_time or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    due = due_projects(catalog, now, PUBLISHER_NAMES)
    if not due:
        return dg.SkipReason(f"nothing due at {now:%Y-%m-%d %H:%M} UTC")
    return [
        dg.RunRequest(
            partition_key=project.key,
            # Same project and attempt → same key: Dagster launches it once however often the
            # tick is evaluated; after a failed attempt the count moves on and it is retried.
            run_key=f"publish:{_idem(project.key, project.settings.publisher)}:{attempts}",
            tags={"shorts/source": "publish_schedule"},
        )
        for project, attempts in due
    ]


def _idem(key: str, publisher: str) -> str:
    return publication_key(key, PUBLISHER_NAMES.get(publisher, publisher))
