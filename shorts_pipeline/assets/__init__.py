"""One module per stage; `production_assets` is the graph in order."""

from shorts_pipeline.assets.narration import narration
from shorts_pipeline.assets.script import script
from shorts_pipeline.assets.search import search_results
from shorts_pipeline.assets.segments import segments
from shorts_pipeline.assets.selection import selections
from shorts_pipeline.assets.slides import slides
from shorts_pipeline.assets.upload import upload
from shorts_pipeline.assets.video import video

production_assets = [
    search_results,
    selections,
    script,
    narration,
    slides,
    segments,
    video,
    upload,
]

__all__ = [
    "narration",
    "production_assets",
    "script",
    "search_results",
    "segments",
    "selections",
    "slides",
    "upload",
    "video",
]
