"""publication: the video on its channel, at or after its publish time, exactly once."""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from shorts_pipeline.assets.common import OWNERS, project_of
from shorts_pipeline.models import (
    ProjectSpec,
    ProjectStatus,
    PublishedVideo,
    PublishRequest,
    UploadRecord,
    VideoRecord,
    VideoScript,
)
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.render.speech_text import spoken_text
from shorts_pipeline.resources.catalog import (
    AlreadyPublishedError,
    CatalogResource,
    PublicationBusyError,
    Review,
)
from shorts_pipeline.resources.channel import LocalChannelPublisher
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.publishing import PublishError
from shorts_pipeline.resources.youtube import YouTubePublisher

# A publication attempt that started this long ago and never finished is taken over.
PUBLISH_LEASE_SECONDS = 1800


def publication_key(project_key: str, publisher: str) -> str:
    """The idempotency key: one publication per project and channel, whatever is retried."""
    return f"{project_key}@{publisher}"


def publish_blocker(
    project: ProjectSpec, review: Review, now: datetime, *, require_time: bool = True
) -> str | None:
    """Why `project` must not be published at `now`, or None when it may."""
    if project.review and review.state != "approved":
        state = review.state or "not reviewed"
        why = f" ({review.reason})" if review.reason else ""
        return (
            f"{project.key} needs approval before it is published and is {state}{why}: "
            f"`shorts approve {project.key}`"
        )
    if project.publish_at is None and require_time:
        return f"{project.key} has no publish time (`shorts add --publish-at ISO`)"
    if project.publish_at is not None and project.publish_at > now:
        return f"{project.key} is due at {project.publish_at.isoformat()}, not yet"
    if project.status not in (ProjectStatus.uploaded, ProjectStatus.published):
        return f"{project.key} has no uploaded video yet (status {project.status.value})"
    return None


def due_projects(
    catalog: CatalogResource, now: datetime, publishers: dict[str, str] | None = None
) -> list[tuple[ProjectSpec, int]]:
    """Projects to publish at `now`, each with the number of earlier attempts: uploaded,
    approved when review is on, publish time come, not published, not being published."""
    due = []
    for project in catalog.list_projects():
        if publish_blocker(project, catalog.review(project.key), now) is not None:
            continue
        name = (publishers or {}).get(project.settings.publisher, project.settings.publisher)
        record = catalog.publication(publication_key(project.key, name))
        if record is not None and record.state == "published":
            continue
        if record is not None and record.state == "started":
            age = (datetime.now(UTC) - record.updated_at).total_seconds()
            if age < PUBLISH_LEASE_SECONDS:
                continue
        due.append((project, record.attempts if record else 0))
    return due


@dg.asset(
    partitions_def=project_partitions,
    group_name="publishing",
    kinds={"youtube", "rss"},
    owners=OWNERS,
    pool="network",
)
def publication(
    context: dg.AssetExecutionContext,
    script: VideoScript,
    video: VideoRecord,
    upload: UploadRecord,
    catalog: CatalogResource,
    media_store: MediaStoreResource,
    local_channel: LocalChannelPublisher,
    youtube: YouTubePublisher,
) -> dg.MaterializeResult[PublishedVideo]:
    """The uploaded video published to the project's channel — the local channel (a folder
    with RSS and JSON feeds) or YouTube (resumable upload, captions, thumbnail) — once its
    publish time has come and, when review is on, after approval. Exactly once: an
    idempotency record in the catalog is claimed before publishing; a retried run resumes the
    upload it started and a published project returns its first publication."""
    project = project_of(context, catalog)
    now = datetime.now(UTC)
    blocker = publish_blocker(project, catalog.review(project.key), now, require_time=False)
    if blocker:
        raise dg.Failure(description=f"not published: {blocker}", allow_retries=False)
    publisher = youtube if project.settings.publisher == "youtube" else local_channel
    name = publisher.name
    idem = publication_key(project.key, name)
    try:
        claim = catalog.claim_publication(idem, project.key, name, PUBLISH_LEASE_SECONDS)
    except AlreadyPublishedError as done:
        record = done.publication.record
        assert record is not None
        context.log.info(f"already published: {record.url}")
        return _result(record, attempts=done.publication.attempts, repeated=True)
    except PublicationBusyError as busy:
        raise dg.Failure(description=str(busy), allow_retries=False) from busy
    request = PublishRequest(
        project_key=project.key,
        idempotency_key=idem,
        title=project.title,
        description=_description(project, script),
        tags=_tags(project),
        language=script.language or project.settings.language,
        publish_at=project.publish_at,
        privacy=project.settings.privacy,
        video_path=str(media_store.local_path(upload.media_key)),
        thumbnail_path=str(media_store.local_path(video.thumbnail_key)),
        subtitles_path=(
            str(media_store.local_path(video.subtitles_key)) if video.subtitles_key else None
        ),
    )
    try:
        record = publisher.publish(
            request,
            resume=claim.resume_token,
            checkpoint=lambda token: catalog.save_publication_token(idem, token),
        )
    except PublishError as err:
        catalog.fail_publication(idem, str(err))
        raise dg.Failure(
            description=f"publishing {project.key} to {name} failed: {err}",
            allow_retries=err.retryable,
        ) from err
    except BaseException as err:  # interrupted: the next attempt resumes from the token
        catalog.fail_publication(idem, f"interrupted: {type(err).__name__}")
        raise
    catalog.finish_publication(record)
    return _result(record, attempts=claim.attempts, repeated=False)


def _result(
    record: PublishedVideo, *, attempts: int, repeated: bool
) -> dg.MaterializeResult[PublishedVideo]:
    return dg.MaterializeResult(
        value=record,
        metadata={
            "url": dg.MetadataValue.url(record.url),
            "platform": record.platform,
            "video_id": record.video_id,
            "published_at": record.published_at.isoformat(),
            "attempts": attempts,
            "already_published": repeated,
        },
    )


def _description(project: ProjectSpec, script: VideoScript) -> str:
    """The first scene's words, then the keywords as hashtags."""
    scenes = script.scenes()
    lead = spoken_text(scenes[0].narration) if scenes else project.title
    tags = " ".join(f"#{t.replace(' ', '')}" for t in _tags(project))
    return f"{lead}\n\n{tags}".strip()


def _tags(project: ProjectSpec) -> Sequence[str]:
    return [k for k in project.keywords if k.strip()][:15]
