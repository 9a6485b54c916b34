"""Publishing to YouTube through the YouTube Data API v3, with the resumable upload protocol.

`YouTubePublisher.publish(request, resume=None, checkpoint=None)`:

1. Prepares the metadata before any call (`video_metadata`): title, description and tags
   cleaned and cut to YouTube's limits, `#Shorts` in the description, privacy and schedule,
   made-for-kids and the synthetic-media disclosure, language and category.
2. Trades the refresh token for an access token (OAuth 2.0, `grant_type=refresh_token`).
3. Uploads the video with the resumable protocol
   (https://developers.google.com/youtube/v3/guides/using_resumable_upload_protocol): a
   session is created, handed to `checkpoint` at once, and the file is sent in chunks.
   After a server error or a dropped connection the session is asked how much it holds and
   the upload goes on from there, never from zero while the session lives. Given `resume`
   (a session URI an earlier attempt checkpointed), it first asks that session: a finished
   upload is not sent again; a partial one goes on; an expired one is replaced.
4. Sets the thumbnail and uploads the SRT captions; their failures are recorded in
   `details` and do not undo the publication.

Errors are `PublishError`s: `retryable` for server errors, network trouble and quota (the
publish schedule tries again at its next tick, resuming the same session), not retryable for
refused credentials or metadata (the message says what to fix). Credentials come from the
resource's fields or, when unset, the environment at call time; they never appear in
messages, logs or `details`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import dagster as dg
import httpx2
from pydantic import Field

from shorts_pipeline.models import PublishedVideo, PublishRequest
from shorts_pipeline.resources.publishing import PublishError

logger = logging.getLogger(__name__)

# YouTube's limits (https://developers.google.com/youtube/v3/docs/videos).
TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000  # the API counts UTF-8 bytes, not characters
TAGS_MAX_CHARS = 500  # all tags, counted as `tags_length` does
# Not documented by the API; long single tags are refused as invalidTags in practice, and a
# 30-character tag is already a phrase nobody searches for.
TAG_MAX_CHARS = 30
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024
CHUNK_MULTIPLE = 256 * 1024  # resumable chunks other than the last must be multiples of this
SHORTS_HASHTAG = "#Shorts"
# A publish time closer than this is "now": YouTube refuses a publishAt in the past, and the
# upload itself takes a while.
SCHEDULE_MIN_LEAD = timedelta(minutes=2)

UPLOAD_SCOPE = "https://www.googleapis.com/auth/youtube.upload"
CAPTIONS_SCOPE = "https://www.googleapis.com/auth/youtube.force-ssl"
ENV_CLIENT_ID = "YOUTUBE_CLIENT_ID"
ENV_CLIENT_SECRET = "YOUTUBE_CLIENT_SECRET"
ENV_REFRESH_TOKEN = "YOUTUBE_REFRESH_TOKEN"

QUOTA_REASONS = frozenset(
    {"quotaExceeded", "dailyLimitExceeded", "rateLimitExceeded", "userRateLimitExceeded"}
)
_HINTS = {
    "uploadLimitExceeded": "the channel has reached YouTube's upload limit; it lifts within "
    "24 hours — publish again then.",
    "forbidden": "the account behind the refresh token may not do this; check that it owns a "
    "YouTube channel and that the token was granted the youtube.upload scope.",
    "insufficientPermissions": f"the refresh token lacks a scope; get a new one with "
    f"{UPLOAD_SCOPE} and {CAPTIONS_SCOPE}.",
    "youtubeSignupRequired": "the Google account has no YouTube channel; create one first.",
    "invalidTitle": "YouTube refused the title; edit the project's title.",
    "invalidDescription": "YouTube refused the description; edit it.",
    "invalidTags": "YouTube refused the tags; edit the project's keywords.",
    "invalidCategoryId": "set category_id on the YouTube resource to a valid category.",
    "invalidPublishAt": "the publish time must be in the future; change the project's publish_at.",
    "defaultLanguageNotSet": "set the project's language.",
}
_RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
ALREADY_UPLOADED = "already uploaded"  # details["upload"] when `resume` found it finished


# ---- the resource --------------------------------------------------------------------------


class YouTubePublisher(dg.ConfigurableResource):
    """Publishes videos to a YouTube channel through the YouTube Data API v3: resumable
    chunked upload (resumed, never restarted, after a server error or a dropped connection,
    and across attempts through the checkpointed session URI), then the thumbnail and the
    SRT captions.

    Credentials: an OAuth client (`client_id`, `client_secret`) and a refresh token for the
    channel with the scopes youtube.upload and youtube.force-ssl (captions). Bind them with
    `dg.EnvVar(...)`, or leave them unset to read YOUTUBE_CLIENT_ID, YOUTUBE_CLIENT_SECRET
    and YOUTUBE_REFRESH_TOKEN at call time. They are never logged.
    """

    name: ClassVar[str] = "youtube"

    client_id: str | None = Field(
        default=None, description=f"OAuth client ID; default: the {ENV_CLIENT_ID} variable."
    )
    client_secret: str | None = Field(
        default=None,
        description=f"OAuth client secret; default: the {ENV_CLIENT_SECRET} variable.",
    )
    refresh_token: str | None = Field(
        default=None,
        description=f"The channel's OAuth refresh token; default: the {ENV_REFRESH_TOKEN} "
        "variable.",
    )
    token_url: str = Field(
        default="https://oauth2.googleapis.com/token", description="OAuth token endpoint."
    )
    api_base: str = Field(
        default="https://www.googleapis.com", description="Where the YouTube API answers."
    )
    chunk_size_mb: float = Field(
        default=8,
        gt=0,
        description="Upload chunk size in MiB; a multiple of 0.25 (256 KiB), as YouTube asks.",
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        description="Consecutive failed requests (5xx, dropped connection) tolerated before "
        "giving up for this attempt; progress resets the count.",
    )
    retry_base_seconds: float = Field(
        default=1.0, ge=0, description="First back-off delay; it doubles on each retry."
    )
    retry_max_seconds: float = Field(default=30.0, ge=0, description="Longest back-off delay.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Per-request timeout.")
    category_id: str = Field(default="22", description="Video category (22: People & Blogs).")
    made_for_kids: bool = Field(default=False, description="status.selfDeclaredMadeForKids.")
    add_shorts_hashtag: bool = Field(
        default=True, description="Add #Shorts to the description when it is missing."
    )

    def publish(
        self,
        request: PublishRequest,
        *,
        resume: str | None = None,
        checkpoint: Callable[[str], None] | None = None,
    ) -> PublishedVideo:
        """Upload `request.video_path` with its metadata, thumbnail and captions; return
        where it went. `checkpoint(session_uri)` is called as soon as the upload session
        exists; pass that URI back as `resume` to continue (or find) the upload."""
        metadata = video_metadata(
            request,
            category_id=self.category_id,
            made_for_kids=self.made_for_kids,
            add_shorts_hashtag=self.add_shorts_hashtag,
        )
        video = Path(request.video_path)
        if not video.is_file():
            raise PublishError(f"the video to publish does not exist: {video}")
        if video.stat().st_size == 0:
            raise PublishError(f"the video to publish is empty (0 bytes): {video}; render it again")
        chunk_size = self._chunk_size()
        credentials = self._credentials()
        with _Api(self, credentials) as api, _redacted_errors(api.secrets):
            upload = _ResumableUpload(api, video, metadata.body, chunk_size, checkpoint)
            resource, session_uri, how = upload.run(resume)
            video_id = str(resource.get("id") or "")
            if not video_id:
                raise PublishError(
                    "YouTube finished the upload but its answer names no video id; look for "
                    "the video in YouTube Studio before publishing again",
                    retryable=False,
                )
            logger.info("YouTube video %s %s", video_id, how)
            details = {
                "privacy": metadata.privacy,
                "publish_at": _rfc3339(metadata.scheduled_at) if metadata.scheduled_at else "",
                "session": session_uri,
                "upload": how,
            }
            if request.thumbnail_path:
                details["thumbnail"] = _set_thumbnail(api, video_id, Path(request.thumbnail_path))
            if request.subtitles_path:
                # An earlier attempt that finished the upload may have added them already.
                if how == ALREADY_UPLOADED and _has_captions(api, video_id, request.language):
                    details["captions"] = f"already there ({request.language})"
                else:
                    details["captions"] = _insert_captions(
                        api, video_id, Path(request.subtitles_path), request.language
                    )
            if metadata.notes:
                details["notes"] = "; ".join(metadata.notes)
        return PublishedVideo(
            platform=self.name,
            video_id=video_id,
            url=f"https://youtube.com/shorts/{video_id}",
            published_at=metadata.scheduled_at or datetime.now(UTC),
            idempotency_key=request.idempotency_key,
            details=details,
        )

    def _chunk_size(self) -> int:
        size = round(self.chunk_size_mb * 1024 * 1024)
        if size % CHUNK_MULTIPLE:
            raise PublishError(
                f"chunk_size_mb={self.chunk_size_mb} is not a multiple of 256 KiB (0.25 MiB), "
                "which YouTube's resumable upload requires; use e.g. 8 or 0.25"
            )
        return size

    def _credentials(self) -> _Credentials:
        values = {
            ENV_CLIENT_ID: self.client_id or os.environ.get(ENV_CLIENT_ID),
            ENV_CLIENT_SECRET: self.client_secret or os.environ.get(ENV_CLIENT_SECRET),
            ENV_REFRESH_TOKEN: self.refresh_token or os.environ.get(ENV_REFRESH_TOKEN),
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise PublishError(
                f"YouTube credentials are missing: {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set. Set {ENV_CLIENT_ID}, "
                f"{ENV_CLIENT_SECRET} and {ENV_REFRESH_TOKEN} (or the YouTube resource's "
                "client_id, client_secret and refresh_token): an OAuth client from the Google "
                "Cloud console with the YouTube Data API v3 enabled, and a refresh token for "
                f"the channel granted the scopes {UPLOAD_SCOPE} and {CAPTIONS_SCOPE}",
                retryable=False,
            )
        return _Credentials(
            client_id=str(values[ENV_CLIENT_ID]),
            client_secret=str(values[ENV_CLIENT_SECRET]),
            refresh_token=str(values[ENV_REFRESH_TOKEN]),
        )


# ---- metadata ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoMetadata:
    """The `video` resource sent with videos.insert (parts snippet and status)."""

    body: dict[str, Any]
    privacy: str  # the privacyStatus sent
    scheduled_at: datetime | None  # status.publishAt, when the video goes public later
    notes: list[str] = field(default_factory=list)  # what was changed to fit YouTube


def video_metadata(
    request: PublishRequest,
    *,
    category_id: str = "22",
    made_for_kids: bool = False,
    add_shorts_hashtag: bool = True,
    now: datetime | None = None,
) -> VideoMetadata:
    """The snippet and status YouTube gets for `request`, within YouTube's limits.

    - title: `<` and `>` removed (YouTube refuses them), whitespace collapsed, cut at a word
      boundary with "…" to 100 characters; an empty title is an error.
    - description: `<`/`>` removed, `#Shorts` appended when asked and not already there,
      cut to 5000 UTF-8 bytes (keeping the hashtag).
    - tags: see `clean_tags`.
    - privacy: the request's; a public video with a publish time in the future is sent as
      private with `status.publishAt` (YouTube only schedules private videos, and makes them
      public at that time). A publish time on an unlisted or private request is ignored.
    - status.containsSyntheticMedia: the request's synthetic-media disclosure;
      selfDeclaredMadeForKids; snippet.defaultLanguage/defaultAudioLanguage: the language.
    """
    notes: list[str] = []
    title = clean_title(request.title)
    if not title:
        raise PublishError(
            f"the video title is empty after removing what YouTube refuses: {request.title!r}; "
            "give the project a title"
        )
    if title != " ".join(_strip_angle_brackets(request.title).split()):
        notes.append(f"title shortened to {TITLE_MAX_CHARS} characters")
    description = clean_description(request.description, add_shorts_hashtag=add_shorts_hashtag)
    tags, dropped = clean_tags(request.tags)
    if dropped:
        notes.append(f"tags left out (too long or over the 500-character total): {dropped}")

    now = now or datetime.now(UTC)
    publish_at = _as_utc(request.publish_at) if request.publish_at else None
    privacy: str = request.privacy
    scheduled_at = None
    status: dict[str, Any] = {}
    if publish_at and publish_at > now + SCHEDULE_MIN_LEAD:
        if request.privacy == "public":
            privacy, scheduled_at = "private", publish_at
            status["publishAt"] = _rfc3339(publish_at)
        else:
            notes.append(f"publish_at ignored: the video is {request.privacy}")
    status.update(
        privacyStatus=privacy,
        selfDeclaredMadeForKids=made_for_kids,
        containsSyntheticMedia=request.synthetic_media,
    )
    snippet: dict[str, Any] = {
        "title": title,
        "description": description,
        "categoryId": category_id,
        "defaultLanguage": request.language,
        "defaultAudioLanguage": request.language,
    }
    if tags:
        snippet["tags"] = tags
    return VideoMetadata(
        body={"snippet": snippet, "status": status},
        privacy=privacy,
        scheduled_at=scheduled_at,
        notes=notes,
    )


def clean_title(title: str) -> str:
    """`title` on one line without `<`/`>`, at most 100 characters (cut at a word boundary,
    ending in "…")."""
    text = " ".join(_strip_angle_brackets(title).split())
    if len(text) <= TITLE_MAX_CHARS:
        return text
    return _cut_at_word(text, TITLE_MAX_CHARS - 1) + "…"


def clean_description(description: str, *, add_shorts_hashtag: bool = True) -> str:
    """`description` without `<`/`>`, with `#Shorts` at the end when asked (unless it has it),
    at most 5000 UTF-8 bytes."""
    text = _strip_angle_brackets(description).replace("\r\n", "\n").strip()
    suffix = ""
    if add_shorts_hashtag and not re.search(r"#shorts\b", text, re.IGNORECASE):
        suffix = ("\n\n" if text else "") + SHORTS_HASHTAG
    budget = DESCRIPTION_MAX_BYTES - len(suffix.encode())
    if len(text.encode()) > budget:
        head = text.encode()[: budget - len("…".encode())].decode(errors="ignore")
        text = _cut_at_word(text, len(head)) + "…"
    return text + suffix


def clean_tags(tags: list[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped): tags YouTube accepts, in the given order.

    Each tag loses `<`, `>`, commas (a comma would split it), a leading `#` and extra
    whitespace; empty tags and repeats (ignoring case) go. A tag longer than 30 characters is
    dropped, and so is any tag that would take the total past 500 characters, counted the way
    YouTube counts: the tags' lengths, a comma between tags, and two more for the quotes
    around a tag that contains a space (`tags_length`).
    """
    kept: list[str] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for raw in tags:
        tag = " ".join(_strip_angle_brackets(raw).replace(",", " ").split()).lstrip("#").strip()
        if not tag or tag.casefold() in seen:
            continue
        seen.add(tag.casefold())
        if len(tag) > TAG_MAX_CHARS or tags_length([*kept, tag]) > TAGS_MAX_CHARS:
            dropped.append(tag)
            continue
        kept.append(tag)
    return kept, dropped


def tags_length(tags: list[str]) -> int:
    """How many of its 500 tag characters YouTube counts for `tags`: each tag's length, plus
    2 for the quotes around a tag containing a space, plus one comma between tags."""
    return sum(len(t) + (2 if " " in t else 0) for t in tags) + max(len(tags) - 1, 0)


def _strip_angle_brackets(text: str) -> str:
    return text.replace("<", "").replace(">", "")


def _cut_at_word(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at the last space when one is near the end
    (texts without spaces, like Korean or Japanese titles, are cut where the limit falls)."""
    cut = text[:limit]
    space = cut.rfind(" ")
    if len(text) > limit and space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,.;:!?-–—")


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _rfc3339(moment: datetime) -> str:
    return _as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- HTTP: credentials, access token, retries ------------------------------------------------


@dataclass(frozen=True)
class _Credentials:
    client_id: str
    client_secret: str
    refresh_token: str

    def secrets(self) -> list[str]:
        return [self.client_secret, self.refresh_token]

    def __repr__(self) -> str:
        return "_Credentials(client_id=…, client_secret=***, refresh_token=***)"


class _Api:
    """One publish call's conversation with Google: the HTTP client, the access token
    (fetched on first use, fetched again once when a call answers 401) and back-off."""

    def __init__(self, config: YouTubePublisher, credentials: _Credentials) -> None:
        self.config = config
        self.credentials = credentials
        self.client = httpx2.Client(timeout=config.timeout_seconds, follow_redirects=False)
        self.api_origin = _origin(config.api_base)
        self._access_token: str | None = None

    def __enter__(self) -> _Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        return self.config.api_base.rstrip("/") + path

    def secrets(self) -> list[str]:
        return [*self.credentials.secrets(), *([self._access_token] if self._access_token else [])]

    def send(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx2.Response:
        """One API request, with the access token when it goes to the API's own origin (a
        session URI elsewhere gets no token); on 401 the token is renewed and the request
        sent once more. Network errors propagate."""
        ours = _origin(url) == self.api_origin
        for renewed in (False, True):
            sent = dict(headers or {})
            if ours:
                sent["Authorization"] = f"Bearer {self._token(renew=renewed)}"
            response = self.client.request(method, url, headers=sent, **kwargs)
            if response.status_code != 401 or renewed or not ours:
                return response
            logger.info("YouTube answered 401; renewing the access token")
        raise AssertionError("unreachable")

    def call(
        self, what: str, method: str, url: str, ok: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> httpx2.Response:
        """`send`, retrying server errors and network failures with back-off; any other
        answer outside `ok` becomes a `PublishError`."""
        failures = 0
        while True:
            try:
                response = self.send(method, url, **kwargs)
            except httpx2.TransportError as err:
                problem = _transport_problem(err)
            else:
                if response.status_code in ok:
                    return response
                if response.status_code not in _RETRYABLE_STATUSES:
                    raise api_error(what, response)
                problem = f"HTTP {response.status_code} ({_error_reason(response)[0]})"
            failures += 1
            self.back_off(what, problem, failures)

    def back_off(self, what: str, problem: str, failures: int) -> None:
        """Sleep before retry number `failures`, or give up (retryable) past max_retries."""
        if failures > self.config.max_retries:
            raise PublishError(
                f"YouTube kept failing while {what}: {problem}, {failures} times in a row. "
                "This is usually temporary; the next attempt (the publish schedule's next "
                "tick) resumes where this one stopped",
                retryable=True,
            )
        delay = min(
            self.config.retry_max_seconds, self.config.retry_base_seconds * 2 ** (failures - 1)
        )
        delay *= random.uniform(0.5, 1.0)  # jitter: many projects must not retry in lockstep
        logger.warning(
            "YouTube: %s while %s; retry %d/%d in %.1f s",
            problem,
            what,
            failures,
            self.config.max_retries,
            delay,
        )
        time.sleep(delay)

    def _token(self, renew: bool) -> str:
        if self._access_token is None or renew:
            self._access_token = self._fetch_token()
        return self._access_token

    def _fetch_token(self) -> str:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.credentials.refresh_token,
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
        }
        what = "getting an access token from the refresh token"
        failures = 0
        while True:
            try:
                response = self.client.post(self.config.token_url, data=form)
            except httpx2.TransportError as err:
                problem = _transport_problem(err)
            else:
                if response.status_code == 200:
                    token = _json(response).get("access_token")
                    if not token:
                        raise PublishError(
                            f"the OAuth token endpoint {self.config.token_url} answered without "
                            "an access token; check token_url",
                            status=200,
                        )
                    return str(token)
                if response.status_code not in _RETRYABLE_STATUSES:
                    raise _token_error(response)
                problem = f"HTTP {response.status_code}"
            failures += 1
            self.back_off(what, problem, failures)


def _token_error(response: httpx2.Response) -> PublishError:
    body = _json(response)
    error = str(body.get("error") or "")
    description = str(body.get("error_description") or "")
    status = response.status_code
    said = f"HTTP {status}, {error or 'no reason'}{': ' + description if description else ''}"
    if error == "invalid_grant":
        return PublishError(
            f"Google refused the YouTube refresh token ({said}): it is invalid, expired or "
            f"revoked. Get a new one — run the OAuth consent flow for this client with the "
            f"scopes {UPLOAD_SCOPE} and {CAPTIONS_SCOPE} (access_type=offline) — and set it "
            f"as {ENV_REFRESH_TOKEN}. Tokens of an OAuth app still in 'Testing' expire after "
            "7 days; publish the app to keep them",
            retryable=False,
            status=status,
            reason=error,
        )
    if error in ("invalid_client", "unauthorized_client"):
        return PublishError(
            f"Google refused the OAuth client ({said}): check {ENV_CLIENT_ID} and "
            f"{ENV_CLIENT_SECRET}, and that the refresh token was issued to that client",
            retryable=False,
            status=status,
            reason=error,
        )
    return PublishError(
        f"the OAuth token endpoint refused the refresh ({said}); check token_url and the "
        "YouTube credentials",
        retryable=False,
        status=status,
        reason=error or None,
    )


def api_error(what: str, response: httpx2.Response) -> PublishError:
    """The `PublishError` for an API error answer: quota and rate limits are retryable (the
    next schedule tick tries again), server errors too, other refusals are not."""
    status = response.status_code
    reason, message = _error_reason(response)
    said = f"HTTP {status}, {reason}{': ' + message if message else ''}"
    if status == 429 or reason in QUOTA_REASONS:
        return PublishError(
            f"YouTube API quota or rate limit reached while {what} ({said}). The daily quota "
            "resets at midnight Pacific time; nothing is lost — it will be retried at the "
            "next schedule tick",
            retryable=True,
            status=status,
            reason=reason,
        )
    if status >= 500:
        return PublishError(
            f"YouTube failed while {what} ({said}); it will be retried at the next schedule tick",
            retryable=True,
            status=status,
            reason=reason,
        )
    hint = _HINTS.get(reason) or (
        "the access was refused; check the channel and the token's scopes."
        if status in (401, 403)
        else "check the request; this will not succeed by retrying."
    )
    return PublishError(
        f"YouTube refused the request while {what} ({said}): {hint}",
        retryable=False,
        status=status,
        reason=reason,
    )


def _error_reason(response: httpx2.Response) -> tuple[str, str]:
    """(reason, message) of a Google API error body: error.errors[0].reason, error.message."""
    error = _json(response).get("error")
    if isinstance(error, dict):
        errors = error.get("errors") or [{}]
        first = errors[0] if isinstance(errors[0], dict) else {}
        reason = first.get("reason") or error.get("status") or ""
        message = error.get("message") or first.get("message") or ""
        return str(reason) or "unknown", str(message)[:300]
    if isinstance(error, str):  # OAuth-style body
        return error, ""
    return "unknown", response.text[:200].strip()


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _transport_problem(err: httpx2.TransportError) -> str:
    text = str(err)
    return f"{type(err).__name__}{': ' + text if text else ''}"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


@contextmanager
def _redacted_errors(secrets: Callable[[], list[str]]) -> Iterator[None]:
    """Belt and braces: an error text that somehow holds a credential (an API echoing a
    request, say) is re-raised with the credential masked."""
    try:
        yield
    except PublishError as err:
        text = str(err)
        masked = text
        for secret in secrets():
            if secret:
                masked = masked.replace(secret, "***")
        if masked == text:
            raise
        raise PublishError(
            masked, retryable=err.retryable, status=err.status, reason=err.reason
        ) from None


# ---- the resumable upload ------------------------------------------------------------------


@dataclass
class _Outcome:
    """What a PUT to the session said: complete (the video resource), progress (the next
    byte to send), gone (404/410: the session expired), or interrupted (5xx, network)."""

    kind: str
    resource: dict[str, Any] = field(default_factory=dict)
    offset: int = 0
    problem: str = ""


class _SessionGone(Exception):
    pass


class _ResumableUpload:
    """One video's resumable upload: a session, then chunks from wherever the session
    stands, until YouTube answers with the video resource."""

    def __init__(
        self,
        api: _Api,
        video: Path,
        metadata: dict[str, Any],
        chunk_size: int,
        checkpoint: Callable[[str], None] | None,
    ) -> None:
        self.api = api
        self.video = video
        self.metadata = metadata
        self.chunk_size = chunk_size
        self.checkpoint = checkpoint
        self.total = video.stat().st_size
        self.bytes_sent = 0

    def run(self, resume: str | None) -> tuple[dict[str, Any], str, str]:
        """(video resource, session URI, how it went) — sending only what YouTube lacks.

        A session that is gone (expired, or the saved one is too old) is replaced by a new
        one, once per call; the new one starts from byte 0, as it must."""
        uri = resume if resume and resume.startswith(("https://", "http://")) else None
        if resume and uri is None:
            logger.warning("ignoring a resume token that is not a YouTube session URI")
        resumed, replaced = uri is not None, False
        while True:
            query_first = uri is not None
            if uri is None:
                uri = self._create_session()
            try:
                resource = self._send_to(uri, query_first=query_first)
            except _SessionGone:
                if replaced:
                    raise PublishError(
                        "YouTube's upload session expired again after a new one was started; "
                        "the next attempt starts afresh",
                        retryable=True,
                        status=404,
                    ) from None
                logger.warning("the YouTube upload session has expired; starting a new one")
                uri, replaced = None, True
                continue
            break
        if self.bytes_sent == 0:
            how = ALREADY_UPLOADED
        elif replaced:
            how = "uploaded in a new session (the first one expired)"
        else:
            how = "resumed" if resumed else "uploaded"
        return resource, uri, how

    def _create_session(self) -> str:
        response = self.api.call(
            "starting the video upload",
            "POST",
            self.api.url("/upload/youtube/v3/videos"),
            ok=(200, 201),
            params={"uploadType": "resumable", "part": "snippet,status"},
            content=json.dumps(self.metadata).encode(),
            headers={
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Length": str(self.total),
                "X-Upload-Content-Type": "video/mp4",
            },
        )
        location = response.headers.get("Location")
        if not location:
            raise PublishError(
                f"YouTube started an upload session without a Location header (HTTP "
                f"{response.status_code}); check api_base ({self.api.config.api_base})",
                status=response.status_code,
            )
        uri = urljoin(str(response.url), location)
        logger.info("YouTube upload session started for %d bytes", self.total)
        if self.checkpoint is not None:
            self.checkpoint(uri)
        return uri

    def _send_to(self, uri: str, *, query_first: bool) -> dict[str, Any]:
        """Send the file to session `uri` from the offset the session confirms; return the
        video resource. Failures back off, then ask the session where it stands (an empty
        PUT with `Content-Range: bytes */total`) and go on from there; the failure count
        resets whenever the session confirms new bytes."""
        offset, failures, query = 0, 0, query_first
        with self.video.open("rb") as file:
            while True:
                if query:
                    outcome = self._put(uri, b"", f"bytes */{self.total}")
                else:
                    file.seek(offset)
                    data = file.read(min(self.chunk_size, self.total - offset))
                    end = offset + len(data) - 1
                    outcome = self._put(uri, data, f"bytes {offset}-{end}/{self.total}")
                if outcome.kind == "complete":
                    return outcome.resource
                if outcome.kind == "gone":
                    raise _SessionGone
                problem = outcome.problem
                if outcome.kind == "progress":
                    moved = outcome.offset > offset
                    if outcome.offset < self.total and (moved or query):
                        failures = 0 if moved else failures
                        offset, query = outcome.offset, False
                        continue
                    problem = (
                        "every byte was sent but YouTube did not finish the upload"
                        if outcome.offset >= self.total
                        else "YouTube kept none of the chunk"
                    )
                failures += 1
                self.api.back_off(
                    f"uploading the video (at byte {offset} of {self.total})", problem, failures
                )
                query = True

    def _put(self, uri: str, data: bytes, content_range: str) -> _Outcome:
        headers = {"Content-Range": content_range}
        if data:
            headers["Content-Type"] = "video/mp4"
        try:
            response = self.api.send("PUT", uri, content=data, headers=headers)
        except httpx2.TransportError as err:
            return _Outcome("interrupted", problem=_transport_problem(err))
        finally:
            self.bytes_sent += len(data)
        status = response.status_code
        if status in (200, 201):
            return _Outcome("complete", resource=_json(response))
        if status == 308:
            return _Outcome("progress", offset=_next_offset(response.headers.get("Range")))
        if status in (404, 410):
            return _Outcome("gone")
        if status in _RETRYABLE_STATUSES:
            return _Outcome("interrupted", problem=f"HTTP {status} ({_error_reason(response)[0]})")
        raise api_error("uploading the video", response)


def _next_offset(range_header: str | None) -> int:
    """The byte after the last one a 308's `Range: bytes=0-N` confirms (0 without a Range)."""
    match = re.fullmatch(r"\s*bytes=0-(\d+)\s*", range_header or "")
    return int(match.group(1)) + 1 if match else 0


# ---- after the upload: thumbnail and captions -----------------------------------------------


def _set_thumbnail(api: _Api, video_id: str, path: Path) -> str:
    """thumbnails.set; returns what `details["thumbnail"]` records."""
    if not path.is_file():
        return f"skipped: {path} does not exist"
    size = path.stat().st_size
    if size > THUMBNAIL_MAX_BYTES:
        return f"skipped: {path.name} is {size} bytes, over YouTube's 2 MB thumbnail limit"
    content_type = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    try:
        api.call(
            "setting the thumbnail",
            "POST",
            api.url("/upload/youtube/v3/thumbnails/set"),
            ok=(200,),
            params={"videoId": video_id, "uploadType": "media"},
            content=path.read_bytes(),
            headers={"Content-Type": content_type},
        )
    except PublishError as err:
        logger.warning("YouTube video %s published without its thumbnail: %s", video_id, err)
        if err.reason == "forbidden":
            return (
                f"failed: {err} (custom thumbnails need a verified channel: "
                "https://www.youtube.com/verify)"
            )
        return f"failed: {err}"
    return "set"


def _has_captions(api: _Api, video_id: str, language: str) -> bool:
    """Whether the video already has our caption track (the unnamed one in `language`).
    When YouTube cannot say, the answer is no: a repeated track beats a missing one."""
    try:
        response = api.call(
            "listing the captions",
            "GET",
            api.url("/youtube/v3/captions"),
            ok=(200,),
            params={"part": "snippet", "videoId": video_id},
        )
    except PublishError as err:
        logger.warning("could not list the captions of YouTube video %s: %s", video_id, err)
        return False
    items = _json(response).get("items") or []
    return any(
        isinstance(item, dict)
        and (item.get("snippet") or {}).get("language") == language
        and not (item.get("snippet") or {}).get("name")
        for item in items
    )


def _insert_captions(api: _Api, video_id: str, path: Path, language: str) -> str:
    """captions.insert (multipart/related: the snippet, then the SRT); returns what
    `details["captions"]` records."""
    if not path.is_file():
        return f"skipped: {path} does not exist"
    snippet = {"snippet": {"videoId": video_id, "language": language, "name": ""}}
    boundary = f"shorts-{uuid.uuid4().hex}"
    body = b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(snippet).encode(),
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            path.read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    try:
        response = api.call(
            "uploading the captions",
            "POST",
            api.url("/upload/youtube/v3/captions"),
            ok=(200, 201),
            params={"part": "snippet", "uploadType": "multipart"},
            content=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        )
    except PublishError as err:
        logger.warning("YouTube video %s published without captions: %s", video_id, err)
        return f"failed: {err}"
    caption_id = _json(response).get("id")
    return (
        f"uploaded ({language}, caption {caption_id})" if caption_id else f"uploaded ({language})"
    )
