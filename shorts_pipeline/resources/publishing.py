"""What every publisher shares: the `Publisher` protocol and `PublishError`.

A publisher puts one rendered video on a channel (the local channel folder, YouTube…). The
caller (the `publication` asset, the publish schedule) keeps the contract below:

- `publish(request, resume=None, checkpoint=None)` returns a `PublishedVideo`.
- `checkpoint(token)` is called as soon as the publisher holds something that lets a later
  attempt resume or find the upload (YouTube: the resumable session URI, right after it is
  created). The caller stores it durably (the catalog) before anything else happens and
  passes it back as `resume=` on the next attempt, so a crash or a retry never publishes the
  same render twice and never uploads again what the platform already has.
- Failures raise `PublishError`; `retryable` says whether the same request may succeed later
  (network, server error, quota), which the caller turns into a retry at the next schedule
  tick rather than a crash loop. Messages say what failed, the platform's status and reason,
  and what to do; they never contain credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from shorts_pipeline.models import PublishedVideo, PublishRequest


class PublishError(Exception):
    """Publishing failed. `retryable` is True when the same request may succeed later
    (server error, dropped connection, quota used up); `status` and `reason` are the
    platform's HTTP status and error reason when there was one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes survive pickling (multiprocess executors pickle errors).
        return (self.__class__, (str(self),), self.__dict__)


class Publisher(Protocol):
    """Something that publishes videos to one channel."""

    @property
    def name(self) -> str:
        """The platform's name, as recorded in `PublishedVideo.platform`."""
        ...

    def publish(
        self,
        request: PublishRequest,
        *,
        resume: str | None = None,
        checkpoint: Callable[[str], None] | None = None,
    ) -> PublishedVideo: ...
