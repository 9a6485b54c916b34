"""The code location: every asset, check, resource and job of shorts_pipeline.

Loads with no environment variables set: every resource falls back to SHORTS_HOME
(default ./.shorts), read when a run uses it, not at import.
"""

import dagster as dg

from shorts_pipeline.assets import production_assets
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.clip_sources import LocalLibrarySource
from shorts_pipeline.resources.llm import ScriptWriterResource
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.resources.tts import TtsResource
from shorts_pipeline.resources.ytdlp_source import YtDlpSource

production_job = dg.define_asset_job(
    name="produce_project",
    selection=dg.AssetSelection.assets(*production_assets),
    description="Materialise every stage of one project, from search to upload.",
)

defs = dg.Definitions(
    assets=production_assets,
    jobs=[production_job],
    resources={
        "catalog": CatalogResource(),
        "media_store": MediaStoreResource(),
        "library": LocalLibrarySource(),
        "ytdlp": YtDlpSource(),
        "script_writer": ScriptWriterResource(),
        "tts": TtsResource(),
    },
    # One run per project in-process: the multiprocess executor spends ~10 s per step
    # starting subprocesses here; parallelism comes from concurrent runs instead.
    executor=dg.in_process_executor,
)
