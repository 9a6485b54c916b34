"""One module per stage; `production_assets` is the graph in order."""

from shorts_pipeline.assets.search import search_results
from shorts_pipeline.assets.selection import selections
from shorts_pipeline.assets.slides import slides
from shorts_pipeline.assets.upload import upload
from shorts_pipeline.assets.video import video

production_assets = [search_results, selections, slides, video, upload]

__all__ = ["production_assets", "search_results", "selections", "slides", "upload", "video"]
