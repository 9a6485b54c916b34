"""A local stand-in for fal.ai's queue API (https://queue.fal.run) that makes real MP4s.

Just enough of the real protocol for `FalClient` to run against it over real HTTP, with the
same shapes fal answers with (https://fal.ai/docs/api-reference/inference-api):

- `POST /{model_id}` (any depth, e.g. `/fal-ai/kling-video/v2.1/standard/image-to-video`) —
  submits: `{"status": "IN_QUEUE", "request_id", "queue_position", "status_url",
  "response_url", "cancel_url"}`. Like fal, the three URLs use only the model's owner and app
  (`/fal-ai/kling-video/requests/<id>…`), so a client that builds them from the full model id
  instead of using the answer's URLs is caught (404).
- `GET <status_url>` — `IN_QUEUE` with a falling `queue_position` for `queue_polls` polls,
  then `IN_PROGRESS` for at least `progress_polls` polls and until the video is made, then
  `COMPLETED` (202 while unfinished, 200 once complete, as fal does). A failed request is
  `COMPLETED` with `error` and `error_type`.
- `GET <response_url>` — `{"video": {"url", "content_type", "file_name", "file_size"},
  "seed"}`, or the model's error (e.g. 422 with a `detail` list) as fal passes it on.
- `PUT <cancel_url>` — 202 `CANCELLATION_REQUESTED`, or 400 `ALREADY_COMPLETED`.
- `GET /files/<id>.mp4` — the video, without authentication (like fal's CDN).

Queue endpoints need `Authorization: Key <key>` (401 otherwise). A submit without a `prompt`
string is refused with 422 and a pydantic-style `detail`, like fal's input validation.

Videos are made with ffmpeg: H.264 yuv420p, 30 fps, `duration` seconds (default 5; fal's video
models take it as a string such as "5"). The size comes from `aspect_ratio` ("9:16", "16:9",
"1:1"; default "9:16") and `resolution` (the short side: "360p", "480p", "720p", "1080p";
default "720p"), so the default is 720x1280. With an `image_url` (or `start_image_url`) data
URI it is image-to-video: the image, cover-fitted, with a slow zoom (1.0 → 1.08), so the first
frame is the input and later frames differ. Without one it is text-to-video: ffmpeg's moving
`testsrc2` pattern.

Every request is recorded (method, path, query, parsed JSON body, headers without
`authorization`, and whether the key matched). Faults, as attributes a test sets:

- `reject_prompts_containing` — a prompt containing this text is refused like fal's content
  checker: at `rejection_stage` "result" (default; the request completes with an error and the
  result is 422 `content_policy_violation`) or "submit" (the submit answers that 422).
- `fail_submits` — the first N submits answer 500. `fail_status_polls` — the next N status
  polls answer 500.
- `hang` — requests stay IN_PROGRESS for ever (until cancelled).
- `size` — the output size, whatever was asked (e.g. (1280, 720)).
- `seconds_override` — the output length, whatever was asked.
- `corrupt` — the file served is random bytes, not a video.
- `drift` — (r, g, b) in 8-bit levels added to every generated video (ffmpeg `lutrgb`), so a
  chain of image-to-video calls, each fed the previous output's last frame, drifts
  cumulatively, as real models do.
- `result_override` — the JSON the result endpoint answers with, as given.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAL_TEST_KEY = "fal-test-key-id:fal-test-secret-never-printed"
FPS = 30
DEFAULT_SECONDS = 5.0
SHORT_SIDES = {"360p": 360, "480p": 480, "540p": 540, "720p": 720, "1080p": 1080}
ZOOM = 0.08  # how much the image-to-video zoom has grown by the last frame
CONTENT_POLICY_MESSAGE = (
    "The content could not be processed because it contained material flagged by a content checker."
)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names, without authorization
    body: Any  # the parsed JSON body, or None
    authorized: bool  # the Authorization header was `Key <the expected key>`
    status: int = 0


@dataclass
class Job:
    request_id: str
    model: str
    arguments: dict[str, Any]
    polls: int = 0
    state: str = "IN_QUEUE"  # IN_QUEUE, IN_PROGRESS, COMPLETED, CANCELLED
    video: Path | None = None  # set by the generator thread when done
    error: str | None = None  # why the request failed (COMPLETED with an error)
    error_type: str | None = None
    cancelled: bool = False


@dataclass
class FalServer:
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = FAL_TEST_KEY
    queue_polls: int = 2  # polls answered IN_QUEUE (positions queue_polls-1 … 0)
    progress_polls: int = 1  # polls answered IN_PROGRESS, at least
    # faults
    reject_prompts_containing: str | None = None
    rejection_stage: str = "result"  # "result" or "submit"
    fail_submits: int = 0
    fail_status_polls: int = 0
    hang: bool = False
    size: tuple[int, int] | None = None
    seconds_override: float | None = None
    corrupt: bool = False
    drift: tuple[float, float, float] | None = None
    # The text-to-video picture: a lavfi source ({w}, {h} and {fps} filled in). Colour noise
    # keeps the same colour statistics under zoom, so drift measurements see only the drift.
    pattern: str = "testsrc2=size={w}x{h}:rate={fps}"
    result_override: dict[str, Any] | None = None
    # state
    requests: list[Recorded] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _QuietServer | None = None
    _files: Path | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FalServer:
        self._files = Path(tempfile.mkdtemp(prefix="fal-server-"))
        server = _QuietServer((self.host, self.port), _handler_for(self))
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)

    # ---- what tests look at ---------------------------------------------------------------

    def submits(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def status_polls(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/status")]

    def cancels(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PUT" and r.path.endswith("/cancel")]

    def downloads(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/files/")]

    # ---- request handling (called from the handler, under the lock) ----------------------

    def handle(self, req: Recorded) -> tuple[int, dict[str, str], bytes]:
        if req.path.startswith("/files/") and req.method == "GET":
            return self._file(req.path.removeprefix("/files/"))
        if not req.authorized:
            return _json(
                401,
                {"detail": "No valid credentials were given: send 'Authorization: Key <key>'."},
            )
        parts = req.path.strip("/").split("/")
        if len(parts) >= 4 and parts[2] == "requests":
            job = self.jobs.get(parts[3])
            if job is None or job.model.split("/")[:2] != parts[:2]:
                return _json(404, {"detail": "Request not found"})
            rest = parts[4:]
            if req.method == "GET" and rest == ["status"]:
                return self._status(job)
            if req.method == "GET" and not rest:
                return self._result(job)
            if req.method == "PUT" and rest == ["cancel"]:
                return self._cancel(job)
            return _json(404, {"detail": "Not found"})
        if req.method == "POST" and len(parts) >= 2:
            return self._submit("/".join(parts), req.body)
        return _json(404, {"detail": "Not found"})

    def _submit(self, model: str, arguments: Any) -> tuple[int, dict[str, str], bytes]:
        if self.fail_submits > 0:
            self.fail_submits -= 1
            return _json(500, {"detail": "Internal server error"})
        if not isinstance(arguments, dict) or not isinstance(arguments.get("prompt"), str):
            return _json(
                422,
                {
                    "detail": [
                        {"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}
                    ]
                },
            )
        rejected = self._rejects(arguments)
        if rejected and self.rejection_stage == "submit":
            return _content_policy_error()
        owner_app = "/".join(model.split("/")[:2])
        job = Job(request_id=str(uuid.uuid4()), model=model, arguments=arguments)
        self.jobs[job.request_id] = job
        if rejected:
            job.error, job.error_type = CONTENT_POLICY_MESSAGE, "content_policy_violation"
        elif not self.hang:
            thread = threading.Thread(target=self._generate, args=(job,), daemon=True)
            self._threads.append(thread)
            thread.start()
        base = f"{self.base_url}/{owner_app}/requests/{job.request_id}"
        return _json(
            200,
            {
                "status": "IN_QUEUE",
                "request_id": job.request_id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
                "queue_position": self.queue_polls,
            },
        )

    def _rejects(self, arguments: dict[str, Any]) -> bool:
        needle = self.reject_prompts_containing
        if not needle:
            return False
        return needle.lower() in str(arguments.get("prompt", "")).lower()

    def _status(self, job: Job) -> tuple[int, dict[str, str], bytes]:
        if self.fail_status_polls > 0:
            self.fail_status_polls -= 1
            return _json(500, {"detail": "Internal server error"})
        job.polls += 1
        if job.state != "COMPLETED" and not job.cancelled:
            if job.polls <= self.queue_polls:
                job.state = "IN_QUEUE"
            elif job.polls <= self.queue_polls + self.progress_polls or (
                job.video is None and job.error is None
            ):
                job.state = "IN_PROGRESS"
            else:
                job.state = "COMPLETED"
        body: dict[str, Any] = {
            "status": job.state,
            "request_id": job.request_id,
            "response_url": f"{self.base_url}/{_owner_app(job)}/requests/{job.request_id}",
            "logs": None,
        }
        if job.state == "IN_QUEUE":
            body["queue_position"] = self.queue_polls - job.polls
        if job.state == "COMPLETED":
            body["metrics"] = {"inference_time": 0.5}
            if job.error is not None:
                body["error"], body["error_type"] = job.error, job.error_type
        return _json(200 if job.state == "COMPLETED" else 202, body)

    def _result(self, job: Job) -> tuple[int, dict[str, str], bytes]:
        if job.state != "COMPLETED":
            return _json(400, {"detail": "Request is still in progress"})
        if job.error_type == "content_policy_violation":
            return _content_policy_error()
        if job.error is not None or job.video is None:
            return _json(500, {"detail": job.error or "the model made no video"})
        if self.result_override is not None:
            return _json(200, self.result_override)
        name = job.video.name
        body = {
            "video": {
                "url": f"{self.base_url}/files/{name}",
                "content_type": "video/mp4",
                "file_name": name,
                "file_size": len(self._served_bytes(job.video)),
            },
            "seed": 1234567,
        }
        return _json(200, body)

    def _cancel(self, job: Job) -> tuple[int, dict[str, str], bytes]:
        if job.state == "COMPLETED":
            return _json(400, {"status": "ALREADY_COMPLETED"})
        job.cancelled = True
        job.state = "CANCELLED"
        return _json(202, {"status": "CANCELLATION_REQUESTED"})

    def _file(self, name: str) -> tuple[int, dict[str, str], bytes]:
        assert self._files is not None
        path = self._files / name
        if "/" in name or not path.is_file():
            return 404, {"Content-Type": "text/plain"}, b"not found"
        return 200, {"Content-Type": "video/mp4"}, self._served_bytes(path)

    def _served_bytes(self, path: Path) -> bytes:
        if self.corrupt:  # the same garbage every time, so file_size matches the download
            return random.Random(path.name).randbytes(64 * 1024)
        return path.read_bytes()

    # ---- making videos (a thread per request, outside the lock) ---------------------------

    def _generate(self, job: Job) -> None:
        assert self._files is not None
        out = self._files / f"{job.request_id}.mp4"
        try:
            make_video(
                job.arguments,
                out,
                size=self.size,
                seconds=self.seconds_override,
                drift=self.drift,
                pattern=self.pattern,
            )
        except Exception as err:
            with self._lock:
                job.error, job.error_type = f"generation failed: {err}", "internal_error"
            return
        with self._lock:
            job.video = out


def make_video(
    arguments: dict[str, Any],
    out: Path,
    *,
    size: tuple[int, int] | None = None,
    seconds: float | None = None,
    drift: tuple[float, float, float] | None = None,
    pattern: str = "testsrc2=size={w}x{h}:rate={fps}",
) -> None:
    """The MP4 a fal video model would make for `arguments` (see the module docstring)."""
    width, height = size or output_size(arguments)
    duration = seconds if seconds is not None else float(arguments.get("duration") or 5)
    image = arguments.get("image_url") or arguments.get("start_image_url")
    with tempfile.TemporaryDirectory(prefix="fal-gen-") as scratch:
        if isinstance(image, str) and image.startswith("data:"):
            still = Path(scratch) / "input"
            still.write_bytes(_decode_data_uri(image))
            grow = f"(1+{ZOOM}*t/{duration:.3f})"
            inputs = ["-loop", "1", "-framerate", str(FPS), "-i", str(still)]
            filters = [
                f"scale={width}:{height}:force_original_aspect_ratio=increase",
                f"crop={width}:{height}",
                f"scale=w='trunc({width}*{grow}/2)*2':h='trunc({height}*{grow}/2)*2':eval=frame",
                f"crop={width}:{height}",
            ]
        else:
            inputs = ["-f", "lavfi", "-i", pattern.format(w=width, h=height, fps=FPS)]
            filters = []
        if drift is not None:
            r, g, b = drift
            filters.append(
                f"lutrgb=r='clip(val{r:+g},0,255)':g='clip(val{g:+g},0,255)'"
                f":b='clip(val{b:+g},0,255)'"
            )
        filters.append("format=yuv420p")
        cmd = [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            *inputs,
            "-t",
            f"{duration:.3f}",
            "-vf",
            ",".join(filters),
            "-r",
            str(FPS),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "18",
            "-movflags",
            "+faststart",
            "-an",
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip()[-500:])


def output_size(arguments: dict[str, Any]) -> tuple[int, int]:
    """(width, height) for `aspect_ratio` and `resolution` (the short side), both even."""
    short = SHORT_SIDES.get(str(arguments.get("resolution") or "720p"), 720)
    aspect = str(arguments.get("aspect_ratio") or "9:16")
    across, _, down = aspect.partition(":")
    try:
        ratio = float(across) / float(down)
    except (ValueError, ZeroDivisionError):
        ratio = 9 / 16
    if ratio <= 1:
        return short, round(short / ratio / 2) * 2
    return round(short * ratio / 2) * 2, short


def _decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise ValueError("only base64 data URIs are supported")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as err:
        raise ValueError(f"bad base64 in the data URI: {err}") from err


def _owner_app(job: Job) -> str:
    return "/".join(job.model.split("/")[:2])


def _content_policy_error() -> tuple[int, dict[str, str], bytes]:
    return _json(
        422,
        {
            "detail": [
                {
                    "loc": ["body", "prompt"],
                    "msg": CONTENT_POLICY_MESSAGE,
                    "type": "content_policy_violation",
                    "url": "https://docs.fal.ai/errors#content_policy_violation",
                }
            ]
        },
        {"X-Fal-Retryable": "false"},
    )


def _json(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading (a download over its size cap) resets the connection.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler_for(state: FalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            authorization = headers.pop("authorization", "")
            req = Recorded(
                method=self.command,
                path=url.path,
                query={k: v[0] for k, v in parse_qs(url.query).items()},
                headers=headers,
                body=body,
                authorized=secrets.compare_digest(
                    authorization.encode(), f"Key {state.api_key}".encode()
                ),
            )
            with state._lock:
                status, answer_headers, payload = state.handle(req)
                req.status = status
                state.requests.append(req)
            self.send_response(status)
            for name, value in answer_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _serve

    return Handler
