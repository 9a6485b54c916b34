"""Video generation through fal.ai's queue REST API, spoken directly over HTTP (httpx2).

`FalClient.generate(model, arguments, dest, what=...)` runs one request through fal's queue
(https://fal.ai/docs/api-reference/inference-api):

1. Submit: `POST {queue_url}/{model}` with the JSON arguments and `Authorization: Key …`.
   The answer names `request_id`, `status_url`, `response_url` and `cancel_url`; those URLs
   are used as given, never rebuilt (fal's drop the sub-path of a nested model id such as
   `fal-ai/kling-video/v2.1/standard/image-to-video`).
2. Poll `status_url` every `poll_interval` seconds: `IN_QUEUE` (with `queue_position`),
   `IN_PROGRESS`, then `COMPLETED` (which may carry `error`/`error_type`). Each change is
   reported through `on_status` as a short line ("IN_QUEUE (position 3)", "IN_PROGRESS").
3. Fetch `response_url`: the model's output, or the model's error as fal passes it on
   (422 with a `detail` list for refused input, `content_policy_violation` for the content
   checker). Video models answer `{"video": {"url", "content_type", "file_name",
   "file_size"}}`.
4. Download the video (streamed, size-capped, http/https only, without the key) to a temporary
   file beside `dest`, check with ffprobe that it is a decodable video, and rename it to
   `dest`: a half-written or broken file is never visible there.

Errors are `VideoGenError`s naming `what`, the model and the host, with the fix. `retryable`
is set for what may pass by itself (429, 5xx, network trouble); not for a refused key, refused
arguments, a content-policy refusal (`ContentRejected`) or the time limit. The submission is
never repeated here — a second submit may be billed twice — so retrying is the caller's
decision. Once submitted, a request this client gives up on (time limit, errors, interruption)
is cancelled, best effort. The key never appears in messages, logs or reprs.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

from shorts_pipeline.render.errors import MediaError
from shorts_pipeline.render.probe import probe_clip

logger = logging.getLogger(__name__)

ENV_KEY = "FAL_KEY"
DEFAULT_QUEUE_URL = "https://queue.fal.run"
CHUNK_BYTES = 1024 * 1024
# Words fal's models and content checkers use when they refuse a prompt or an image.
_POLICY_MARKERS = (
    "content_policy",
    "content policy",
    "content checker",
    "nsfw",
    "safety",
    "moderation",
    "flagged",
)
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


class VideoGenError(Exception):
    """Generating a video failed; `retryable` when trying again later may succeed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ContentRejected(VideoGenError):
    """The provider refused the prompt or the image (content policy); not retryable: the same
    prompt and image would be refused again."""


@dataclass(frozen=True)
class FalResult:
    """A generated video, downloaded and checked."""

    path: Path  # the video, at the `dest` asked for
    request_id: str
    model: str
    wait_seconds: float  # from submission to completion, queue included
    details: dict[str, str] = field(default_factory=dict)  # e.g. content_type, file_size, seed


def image_data_uri(path: Path) -> str:
    """A PNG or JPEG file as a `data:image/…;base64,…` URI, which fal's models accept
    wherever they take an image URL."""
    data = Path(path).read_bytes()
    mime = next((m for magic, m in _IMAGE_TYPES.items() if data.startswith(magic)), None)
    if mime is None:
        raise VideoGenError(
            f"{path} is not a PNG or JPEG image; fal's video models are given the start frame "
            "as one of those"
        )
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class FalClient:
    """Runs fal.ai video models through the queue API and downloads what they make."""

    def __init__(
        self,
        *,
        api_key: str,
        queue_url: str = DEFAULT_QUEUE_URL,
        poll_interval: float = 2.0,
        timeout_seconds: float = 900.0,
        max_download_bytes: int = 500_000_000,
        request_timeout: float = 60.0,
    ) -> None:
        self._api_key = api_key or ""
        self.queue_url = queue_url.rstrip("/")
        self.poll_interval = poll_interval
        self.timeout_seconds = timeout_seconds
        self.max_download_bytes = max_download_bytes
        self.request_timeout = request_timeout

    def __repr__(self) -> str:
        key = "***" if self._api_key else "unset"
        return f"FalClient(queue_url={self.queue_url!r}, api_key={key})"

    def generate(
        self,
        model: str,
        arguments: Mapping[str, object],
        dest: Path,
        *,
        what: str,
        on_status: Callable[[str], None] | None = None,
    ) -> FalResult:
        """Run `model` on `arguments` and save the video it makes at `dest`; `what` (e.g.
        "segment 3/6") names the job in every message."""
        call = _Call(self, model, what)
        with _redacted(self._api_key):
            if not self._api_key:
                raise call.error(
                    "no fal.ai API key is set",
                    f"set {ENV_KEY} to a key from https://fal.ai/dashboard/keys",
                )
            with httpx2.Client(
                timeout=self.request_timeout,
                follow_redirects=False,
                headers={"Authorization": f"Key {self._api_key}"},
            ) as api:
                started = time.monotonic()
                handle = call.submit(api, arguments)
                try:
                    status = call.wait(api, handle, started, on_status or (lambda line: None))
                except BaseException:  # the time limit, errors, interruption: stop paying
                    call.cancel(api, handle)
                    raise
                wait_seconds = time.monotonic() - started
                if status.get("error"):
                    call.raise_failed(status)
                output = call.result(api, handle)
            details = call.download(output, Path(dest))
        logger.info(
            "%s: %s made %s in %.1f s (request %s)",
            what,
            model,
            dest,
            wait_seconds,
            handle.request_id,
        )
        return FalResult(
            path=Path(dest),
            request_id=handle.request_id,
            model=model,
            wait_seconds=wait_seconds,
            details=details,
        )


# ---- one generation ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Handle:
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class _Call:
    """One `generate` call: its name, the model and host for messages, and the steps."""

    def __init__(self, client: FalClient, model: str, what: str) -> None:
        self.client = client
        self.model = model
        self.what = what
        self.host = urlsplit(client.queue_url).netloc or client.queue_url
        self.request_id: str | None = None

    def error(
        self, problem: str, fix: str, *, retryable: bool = False, rejected: bool = False
    ) -> VideoGenError:
        where = f"{self.model} on {self.host}"
        if self.request_id:
            where += f", request {self.request_id}"
        message = f"{self.what}: {problem} ({where}); {fix}"
        if rejected:
            return ContentRejected(message, retryable=False)
        return VideoGenError(message, retryable=retryable)

    # ---- submit ---------------------------------------------------------------------------

    def submit(self, api: httpx2.Client, arguments: Mapping[str, object]) -> _Handle:
        url = f"{self.client.queue_url}/{self.model.strip('/')}"
        try:
            response = api.post(url, json=arguments)
        except httpx2.TimeoutException as err:
            raise self.error(
                f"fal did not answer the submission in time ({_transport(err)}); it may have "
                "been queued anyway",
                "try again later; check https://fal.ai/dashboard/requests first to avoid "
                "paying twice",
                retryable=True,
            ) from None
        except httpx2.TransportError as err:
            raise self.error(
                f"could not reach fal to submit ({_transport(err)})",
                "check the network and the queue_url setting, then try again",
                retryable=True,
            ) from None
        if response.status_code not in (200, 201, 202):
            raise self.http_error("submitting", response)
        body = _json(response)
        fields = {k: body.get(k) for k in ("request_id", "status_url", "response_url")}
        if not all(isinstance(v, str) and v for v in fields.values()):
            missing = ", ".join(k for k, v in fields.items() if not v)
            raise self.error(
                f"the submission was answered without {missing}",
                f"check that queue_url ({self.client.queue_url}) is fal's queue API",
            )
        self.request_id = str(fields["request_id"])
        cancel_url = body.get("cancel_url")
        handle = _Handle(
            request_id=self.request_id,
            status_url=str(fields["status_url"]),
            response_url=str(fields["response_url"]),
            cancel_url=str(cancel_url) if cancel_url else f"{fields['response_url']}/cancel",
        )
        logger.info("%s: submitted to %s as request %s", self.what, self.model, self.request_id)
        return handle

    # ---- wait -----------------------------------------------------------------------------

    def wait(
        self,
        api: httpx2.Client,
        handle: _Handle,
        started: float,
        on_status: Callable[[str], None],
    ) -> dict[str, Any]:
        """Poll until COMPLETED and return that status; raise at the time limit."""
        deadline = started + self.client.timeout_seconds
        last_line = ""
        while True:
            status = self.poll(api, handle)
            state = str(status.get("status") or "")
            line = _status_line(status)
            if line != last_line:
                last_line = line
                logger.info("%s: %s", self.what, line)
                on_status(line)
            if state == "COMPLETED":
                return status
            if state not in ("IN_QUEUE", "IN_PROGRESS"):
                raise self.error(
                    f"fal reports the request as {state or 'unknown'}",
                    "it was cancelled or failed on fal's side; generate it again",
                    retryable=state in ("", "FAILED"),
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seconds = self.client.timeout_seconds
                raise self.error(
                    f"not finished after {seconds:g} s (still {state}); cancelling the request",
                    "raise the time limit (the extend.fal_timeout_seconds setting, or "
                    "FalClient's timeout_seconds) if the model is just slow or the queue long",
                )
            time.sleep(min(self.client.poll_interval, remaining))

    def poll(self, api: httpx2.Client, handle: _Handle) -> dict[str, Any]:
        """The status document; a failed poll (network, 429, 5xx) is tried once more."""
        for attempt in (1, 2):
            try:
                response = api.get(handle.status_url)
            except httpx2.TransportError as err:
                if attempt == 2:
                    raise self.error(
                        f"lost contact with fal while waiting ({_transport(err)})",
                        "check the network and try again",
                        retryable=True,
                    ) from None
                logger.warning("%s: status poll failed (%s); retrying", self.what, err)
                continue
            if response.status_code in (200, 202):
                return _json(response)
            if response.status_code not in _RETRYABLE_STATUSES or attempt == 2:
                raise self.http_error("checking the status", response)
            logger.warning("%s: status poll got HTTP %d; retrying", self.what, response.status_code)
        raise AssertionError("unreachable")

    def raise_failed(self, status: dict[str, Any]) -> None:
        reason = _brief(str(status.get("error")))
        kind = str(status.get("error_type") or "")
        if _mentions_policy(f"{kind} {reason}"):
            raise self.error(
                f"fal's content checker refused it: {reason}",
                "change the prompt or the start image",
                rejected=True,
            )
        raise self.error(
            f"the model failed: {reason}{f' ({kind})' if kind else ''}",
            "generate it again; if it keeps failing, check the arguments",
            # runner crashes and timeouts pass; refused input does not
            retryable=not any(word in kind for word in ("validation", "invalid", "missing")),
        )

    # ---- result ---------------------------------------------------------------------------

    def result(self, api: httpx2.Client, handle: _Handle) -> dict[str, Any]:
        try:
            response = api.get(handle.response_url)
        except httpx2.TransportError as err:
            raise self.error(
                f"could not fetch the finished result ({_transport(err)})",
                "try again soon: fal keeps results for a while after completion",
                retryable=True,
            ) from None
        if response.status_code != 200:
            raise self.http_error("fetching the result", response)
        return _json(response)

    # ---- download -------------------------------------------------------------------------

    def download(self, output: dict[str, Any], dest: Path) -> dict[str, str]:
        video = output.get("video")
        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url:
            raise self.error(
                f"the result has no video URL (it holds: {', '.join(sorted(output)) or 'nothing'})",
                "check that the model makes videos and its arguments",
            )
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise self.error(
                f"the video URL is not http(s) ({scheme or 'no'} scheme); refusing to read it",
                "check the model and queue_url",
            )
        details = {
            k: str(video[k])
            for k in ("content_type", "file_name", "file_size")
            if isinstance(video, dict) and video.get(k) is not None
        }
        if output.get("seed") is not None:
            details["seed"] = str(output["seed"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _temporary_beside(dest) as temporary:
            size = self.fetch(url, temporary)
            try:
                info = probe_clip(temporary, min_seconds=0.1)
            except MediaError as err:
                reason = getattr(err, "reason", str(err))
                raise self.error(
                    f"the downloaded file is not a usable video: {reason}",
                    "generate it again",
                    retryable=True,
                ) from None
            os.chmod(temporary, 0o644)
            os.replace(temporary, dest)
        details.update(
            bytes=str(size),
            width=str(info.width),
            height=str(info.height),
            duration=f"{info.duration:.3f}",
            fps=f"{info.fps:g}",
            video_codec=info.video_codec,
        )
        return details

    def fetch(self, url: str, target: Path) -> int:
        """Stream `url` into `target` (no key sent: the files are on fal's CDN); return the
        byte count. Refuses more than max_download_bytes."""
        cap = self.client.max_download_bytes
        host = urlsplit(url).netloc
        try:
            with (
                httpx2.Client(timeout=self.client.request_timeout, follow_redirects=True) as cdn,
                cdn.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise self.error(
                        f"downloading the video from {host} got HTTP {response.status_code}",
                        "generate it again (the file may have expired)",
                        retryable=response.status_code in _RETRYABLE_STATUSES,
                    )
                declared = int(response.headers.get("content-length") or 0)
                if declared > cap:
                    raise self.too_big(declared, host)
                if "text/html" in response.headers.get("content-type", ""):
                    raise self.error(
                        f"{host} served a web page instead of the video",
                        "generate it again",
                        retryable=True,
                    )
                written = 0
                with open(target, "wb") as file:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        written += len(chunk)
                        if written > cap:
                            raise self.too_big(written, host)
                        file.write(chunk)
        except httpx2.TransportError as err:
            raise self.error(
                f"downloading the video from {host} failed ({_transport(err)})",
                "generate it again",
                retryable=True,
            ) from None
        return written

    def too_big(self, size: int, host: str) -> VideoGenError:
        cap = self.client.max_download_bytes
        return self.error(
            f"the video from {host} is larger than max_download_bytes ({size:,} > {cap:,} bytes)",
            "raise max_download_bytes if such files are expected",
        )

    # ---- cancel and errors ----------------------------------------------------------------

    def cancel(self, api: httpx2.Client, handle: _Handle) -> None:
        """Ask fal to drop the request (best effort: failures are only logged)."""
        try:
            response = api.put(handle.cancel_url, timeout=min(self.client.request_timeout, 10))
            logger.warning(
                "%s: cancelled request %s (HTTP %d)",
                self.what,
                handle.request_id,
                response.status_code,
            )
        except Exception as err:
            logger.warning("%s: could not cancel request %s: %s", self.what, handle.request_id, err)

    def http_error(self, doing: str, response: httpx2.Response) -> VideoGenError:
        status = response.status_code
        body = _json(response)
        detail = _detail(body) or _brief(response.text) or response.reason_phrase
        said = f"HTTP {status} while {doing}: {detail}"
        if status in (401, 403):
            return self.error(
                f"FAL_KEY was rejected ({said})",
                f"set {ENV_KEY} to a valid key from https://fal.ai/dashboard/keys (and check "
                "the account's balance)",
            )
        if status == 404:
            return self.error(
                f"fal does not know this model or request ({said})",
                "check the model id and the queue_url setting",
            )
        if 400 <= status < 500 and status not in (408, 429):
            if _mentions_policy(f"{_error_types(body)} {detail}"):
                return self.error(
                    f"fal's content checker refused it: {detail}",
                    "change the prompt or the start image",
                    rejected=True,
                )
            return self.error(
                f"fal refused the request ({said})",
                "fix the model's arguments (see the model's API page on fal.ai); retrying "
                "will not help",
            )
        retryable = response.headers.get("x-fal-retryable", "").lower() != "false"
        what_happened = "rate-limited" if status == 429 else "failed on fal's side"
        return self.error(
            f"{what_happened} ({said})",
            "try again later"
            if retryable
            else "fal says retrying will not help; check the arguments",
            retryable=retryable,
        )


# ---- helpers -------------------------------------------------------------------------------


def _status_line(status: dict[str, Any]) -> str:
    state = str(status.get("status") or "unknown")
    position = status.get("queue_position")
    if state == "IN_QUEUE" and position is not None:
        return f"IN_QUEUE (position {position})"
    return state


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(body: dict[str, Any]) -> str:
    """fal's error detail, brief: a string, or a list of {loc, msg, type} (model errors)."""
    detail = body.get("detail")
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc") or [] if p != "body"]
                msg = str(item.get("msg") or item.get("type") or "")
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return _brief("; ".join(parts))
    if detail is not None:
        return _brief(detail if isinstance(detail, str) else str(detail))
    return _brief(str(body.get("error") or body.get("message") or ""))


def _error_types(body: dict[str, Any]) -> str:
    detail = body.get("detail")
    items = detail if isinstance(detail, list) else []
    types = [str(item.get("type")) for item in items if isinstance(item, dict)]
    return " ".join([*types, str(body.get("error_type") or "")])


def _mentions_policy(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _POLICY_MARKERS)


def _brief(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _transport(err: httpx2.TransportError) -> str:
    text = str(err)
    return f"{type(err).__name__}{': ' + text if text else ''}"


@contextlib.contextmanager
def _temporary_beside(dest: Path) -> Iterator[Path]:
    """A temporary file in `dest`'s folder, removed unless it was renamed away."""
    handle, name = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=dest.name)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _redacted(secret: str) -> Iterator[None]:
    """Belt and braces: an error whose text somehow holds the key (a server echoing the
    request, say) is raised again with the key masked."""
    try:
        yield
    except VideoGenError as err:
        text = str(err)
        if not secret or secret not in text:
            raise
        masked = text.replace(secret, "***")
        raise type(err)(masked, retryable=err.retryable) from None
