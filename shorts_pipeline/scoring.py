"""Automatic ranking of clip candidates: popularity, engagement, recency and duration fit.

Pure functions over `ClipCandidate`s, so the ranking can be tested and explained on its own:
every score comes with its parts, and near-duplicate titles are collapsed to the best one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from shorts_pipeline.models import ClipCandidate

WEIGHTS = {"popularity": 0.45, "engagement": 0.25, "recency": 0.15, "fit": 0.15}
DUPLICATE_JACCARD = 0.8


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: ClipCandidate
    score: float
    parts: dict[str, float]
    duplicate_of: str | None = None


def rank_candidates(
    candidates: list[ClipCandidate],
    *,
    min_seconds: float,
    now: datetime | None = None,
) -> list[ScoredCandidate]:
    """Candidates best first; near-duplicates (by title) marked with the id they repeat."""
    now = now or datetime.now(UTC)
    max_pop = max((math.log10(1 + (c.views or 0)) for c in candidates), default=0.0) or 1.0
    ratios = [(c.likes or 0) / c.views for c in candidates if c.views]
    max_ratio = max(ratios, default=0.0) or 1.0
    scored = []
    for c in candidates:
        parts = {
            "popularity": math.log10(1 + (c.views or 0)) / max_pop,
            "engagement": (((c.likes or 0) / c.views) / max_ratio) if c.views else 0.0,
            "recency": _recency(c.published, now),
            "fit": _duration_fit(c.duration, min_seconds),
        }
        score = sum(WEIGHTS[k] * v for k, v in parts.items())
        scored.append(
            ScoredCandidate(c, round(score, 4), {k: round(v, 3) for k, v in parts.items()})
        )
    scored.sort(key=lambda s: (-s.score, s.candidate.id))
    kept: list[ScoredCandidate] = []
    out: list[ScoredCandidate] = []
    for s in scored:
        words = _title_words(s.candidate.title)
        dup = next(
            (
                k
                for k in kept
                if _jaccard(words, _title_words(k.candidate.title)) >= DUPLICATE_JACCARD
            ),
            None,
        )
        if dup is None:
            kept.append(s)
            out.append(s)
        else:
            out.append(
                ScoredCandidate(s.candidate, s.score, s.parts, duplicate_of=dup.candidate.id)
            )
    return out


def _recency(published: datetime | None, now: datetime) -> float:
    if published is None:
        return 0.3
    age_days = max(0.0, (now - published).total_seconds() / 86400)
    return math.exp(-age_days / 365)


def _duration_fit(duration: float | None, min_seconds: float) -> float:
    if not duration:
        return 0.5
    if duration < min_seconds:
        return duration / min_seconds
    # Very long videos usually bury the moment worth showing.
    return 1.0 if duration <= 120 else 0.6


def _title_words(title: str) -> set[str]:
    return set(re.findall(r"\w+", title.lower()))


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def clip_seconds_budget(
    count: int,
    *,
    max_duration: float,
    title_seconds: float,
    outro_seconds: float,
    transition_seconds: float,
    clip_max_seconds: float,
    margin: float = 0.5,
) -> float:
    """The longest each clip may run so the whole video stays under `max_duration`."""
    if count <= 0:
        return clip_max_seconds
    stills = (title_seconds > 0) + (outro_seconds > 0)
    overlaps = (count + stills - 1) * transition_seconds
    room = max_duration - margin - title_seconds - outro_seconds + overlaps
    return max(1.0, min(clip_max_seconds, room / count))
