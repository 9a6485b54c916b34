"""The code location: every asset, check, resource, job, sensor and schedule of shorts_pipeline.

Loads with no environment variables set: every resource falls back to SHORTS_HOME
(default ./.shorts), read when a run uses it, not at import.
"""

import dagster as dg

from shorts_pipeline.assets import production_assets
from shorts_pipeline.assets.publication import publication
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.channel import LocalChannelPublisher
from shorts_pipeline.resources.clip_sources import LocalLibrarySource
from shorts_pipeline.resources.llm import ScriptWriterResource
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.tts import TtsResource
from shorts_pipeline.resources.video_gen import VideoGenResource
from shorts_pipeline.resources.youtube import YouTubePublisher
from shorts_pipeline.resources.ytdlp_source import YtDlpSource
from shorts_pipeline.schedules import publish_schedule
from shorts_pipeline.sensors.changes import project_changes_sensor
from shorts_pipeline.sensors.new_titles import new_titles_sensor
from shorts_pipeline.sensors.webhook import run_failed_webhook, run_succeeded_webhook

production_job = dg.define_asset_job(
    name="produce_project",
    selection=dg.AssetSelection.assets(*production_assets),
    description="Materialise every stage of one project, from search to upload.",
)

publish_job = dg.define_asset_job(
    name="publish_project",
    selection=dg.AssetSelection.assets(publication),
    description="Publish one project's uploaded video to its channel, exactly once.",
)

defs = dg.Definitions(
    assets=[*production_assets, publication],
    jobs=[production_job, publish_job],
    sensors=[new_titles_sensor, project_changes_sensor, run_succeeded_webhook, run_failed_webhook],
    schedules=[publish_schedule],
    resources={
        "catalog": CatalogResource(),
        "media_store": MediaStoreResource(),
        "library": LocalLibrarySource(),
        "ytdlp": YtDlpSource(),
        "script_writer": ScriptWriterResource(),
        "tts": TtsResource(),
        "video_gen": VideoGenResource(),
        "local_channel": LocalChannelPublisher(),
        "youtube": YouTubePublisher(),
    },
    # One run per project in-process: the multiprocess executor spends ~10 s per step
    # starting subprocesses here; parallelism comes from concurrent runs instead.
    executor=dg.in_process_executor,
)
