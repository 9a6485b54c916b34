"""Frame geometry shared by the card drawer and the filter-graph builder."""

from __future__ import annotations

from dataclasses import dataclass

FRAME_WIDTH = 1080
FRAME_HEIGHT = 1920
FPS = 30

# The Shorts/TikTok/Reels UI covers the top 250 px (search, tabs) and the bottom 400 px
# (caption, buttons); the right edge carries the like/comment column.
SAFE_TOP = 250
SAFE_BOTTOM = 400
SAFE_SIDE = 60
SAFE_RIGHT = 140


@dataclass(frozen=True)
class SafeArea:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def contains(self, x: int, y: int, w: int, h: int) -> bool:
        return x >= self.left and y >= self.top and x + w <= self.right and y + h <= self.bottom


def safe_area(width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT) -> SafeArea:
    """The part of a vertical frame that no platform UI covers, scaled to the frame size."""
    sx, sy = width / FRAME_WIDTH, height / FRAME_HEIGHT
    return SafeArea(
        left=round(SAFE_SIDE * sx),
        top=round(SAFE_TOP * sy),
        right=width - round(SAFE_RIGHT * sx),
        bottom=height - round(SAFE_BOTTOM * sy),
    )


@dataclass(frozen=True)
class Overlay:
    """A transparent PNG placed at (x, y) on the frame for the whole of a segment."""

    path: str
    x: int
    y: int
    width: int
    height: int
