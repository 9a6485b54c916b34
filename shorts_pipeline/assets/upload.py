"""upload: the finished files at their public place in the media store, with a checksum."""

import dagster as dg

from shorts_pipeline.assets.common import OWNERS, project_of
from shorts_pipeline.keys import slugify
from shorts_pipeline.models import ProjectStatus, UploadRecord, VideoRecord
from shorts_pipeline.partitions import project_partitions
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.media_store import MediaStoreResource


@dg.asset(
    partitions_def=project_partitions,
    group_name="production",
    kinds={"s3", "python"},
    owners=OWNERS,
)
def upload(
    context: dg.AssetExecutionContext,
    video: VideoRecord,
    catalog: CatalogResource,
    media_store: MediaStoreResource,
) -> dg.MaterializeResult[UploadRecord]:
    """The rendered video, its thumbnail and subtitles (SRT) copied to `public/<project>/` in
    the media store (a local folder, or S3 by configuration), with the URL a player or
    publisher uses and a SHA-256 that later stages verify before publishing."""
    project = project_of(context, catalog)
    name = slugify(project.title, fallback=project.key)
    video_key = media_store.put(
        media_store.local_path(video.media_key), f"public/{project.key}/{name}.mp4"
    )
    thumb_key = media_store.put(
        media_store.local_path(video.thumbnail_key), f"public/{project.key}/{name}.jpg"
    )
    subtitles_url = None
    if video.subtitles_key:
        srt_key = media_store.put(
            media_store.local_path(video.subtitles_key), f"public/{project.key}/{name}.srt"
        )
        subtitles_url = media_store.url_for(srt_key)
    digest = media_store.sha256(video_key)
    if digest != media_store.sha256(video.media_key):
        raise dg.Failure(description=f"upload of {project.key} is corrupt: checksum mismatch")
    record = UploadRecord(
        project_key=project.key,
        media_key=video_key,
        url=media_store.url_for(video_key),
        sha256=digest,
        size_bytes=media_store.size(video_key),
        thumbnail_url=media_store.url_for(thumb_key),
        subtitles_url=subtitles_url,
    )
    catalog.set_status(project.key, ProjectStatus.uploaded)
    return dg.MaterializeResult(
        value=record,
        metadata={
            "url": dg.MetadataValue.url(record.url),
            "thumbnail_url": dg.MetadataValue.url(record.thumbnail_url or ""),
            "sha256": record.sha256,
            "size_mb": round(record.size_bytes / 1e6, 2),
            "subtitles": dg.MetadataValue.url(subtitles_url) if subtitles_url else "none",
        },
    )
