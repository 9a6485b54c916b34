"""Approve or reject a rendered video: the one decision the CLI and the preview page both make.

A project added with `--review` is published only once a person approved its current render;
a rejection keeps the reason, and `shorts run KEY` renders it again for another review.
"""

from __future__ import annotations

import os
from typing import Literal

from shorts_pipeline.keys import UnsafeKeyError
from shorts_pipeline.models import ProjectStatus
from shorts_pipeline.resources.catalog import CatalogResource, ProjectNotFoundError

Decision = Literal["approved", "rejected"]


class ReviewError(ValueError):
    """The decision cannot be recorded (no such project, nothing to review, no reason given)."""


def default_reviewer() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def record_review(
    catalog: CatalogResource,
    key: str,
    decision: Decision,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> str:
    """Record `decision` on the project's current render; return who made it."""
    try:
        spec = catalog.get_project(key)
    except (ProjectNotFoundError, UnsafeKeyError) as err:
        raise ReviewError(str(err)) from err
    if not spec.review:
        raise ReviewError(f"{key} was not added with --review: it needs no approval")
    if spec.status not in (ProjectStatus.rendered, ProjectStatus.uploaded):
        raise ReviewError(
            f"{key} has no rendered video to review (status {spec.status.value}): "
            f"`shorts run {key}` first"
        )
    if decision == "rejected" and not (reason and reason.strip()):
        raise ReviewError("a rejection needs a reason: it is kept with the decision")
    who = (by or "").strip() or default_reviewer()
    catalog.set_review(spec.key, decision, by=who, reason=reason.strip() if reason else None)
    return who
