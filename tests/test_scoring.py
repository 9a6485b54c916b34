from datetime import UTC, datetime, timedelta

from shorts_pipeline.models import ClipCandidate
from shorts_pipeline.scoring import clip_seconds_budget, rank_candidates

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def cand(id, title, views, likes, days_old, duration=12.0):
    return ClipCandidate(
        id=id,
        source="library",
        url=f"file:///{id}",
        title=title,
        views=views,
        likes=likes,
        published=NOW - timedelta(days=days_old),
        duration=duration,
    )


def test_popular_engaging_recent_clips_rank_first():
    ranked = rank_candidates(
        [
            cand("old", "old classic goal", 1_000_000, 10_000, 2000),
            cand("hit", "new viral skill", 900_000, 90_000, 10),
            cand("tiny", "unknown clip", 100, 1, 10),
        ],
        min_seconds=5,
        now=NOW,
    )
    assert [s.candidate.id for s in ranked] == ["hit", "old", "tiny"]
    assert set(ranked[0].parts) == {"popularity", "engagement", "recency", "fit"}


def test_near_duplicate_titles_are_marked():
    ranked = rank_candidates(
        [
            cand("a", "Messi amazing dribble vs Madrid", 1000, 100, 5),
            cand("b", "Messi amazing dribble vs Madrid HD", 500, 10, 5),
            cand("c", "Different clip entirely", 400, 10, 5),
        ],
        min_seconds=5,
        now=NOW,
    )
    dup = {s.candidate.id: s.duplicate_of for s in ranked}
    assert dup == {"a": None, "b": "a", "c": None}


def test_too_short_clips_lose_fit():
    ranked = rank_candidates(
        [cand("short", "x one", 1000, 10, 5, duration=1.2), cand("ok", "y two", 1000, 10, 5)],
        min_seconds=5,
        now=NOW,
    )
    assert ranked[0].candidate.id == "ok"


def test_budget_keeps_video_under_limit():
    per = clip_seconds_budget(
        10,
        max_duration=60,
        title_seconds=2,
        outro_seconds=2,
        transition_seconds=0.4,
        clip_max_seconds=8,
    )
    total = 2 + 2 + 10 * per - 11 * 0.4
    assert total <= 59.5 + 1e-6
    assert (
        clip_seconds_budget(
            3,
            max_duration=60,
            title_seconds=2,
            outro_seconds=2,
            transition_seconds=0.4,
            clip_max_seconds=8,
        )
        == 8
    )
