"""A local stand-in for Google's OAuth token endpoint and the YouTube Data API upload endpoints.

Just enough of the real protocol for `YouTubePublisher` to run against it over real HTTP:

- `POST /token` — grant_type=refresh_token → an access token (form-encoded, like Google).
- `POST /upload/youtube/v3/videos?uploadType=resumable&part=…` — starts a resumable session:
  200 with `Location: …/upload/youtube/v3/videos?uploadType=resumable&upload_id=…`.
- `PUT <session>` with `Content-Range: bytes a-b/total` — stores the chunk; 308 Resume
  Incomplete with `Range: bytes=0-N`, or 200 with the video resource once every byte is in.
  Non-final chunks are kept only in multiples of `chunk_multiple` (256 KiB, as Google asks);
  the 308's Range says how much was kept. A chunk that does not start where the stored bytes
  end is refused (400), so a client that skips or re-sends bytes is caught.
- `PUT <session>` with `Content-Range: bytes */total` — status query: 308 with the Range, or
  200 with the video resource when the upload is complete.
- `POST /upload/youtube/v3/thumbnails/set?videoId=…` — stores the image.
- `POST /upload/youtube/v3/captions?part=snippet&uploadType=multipart` — multipart/related
  (JSON snippet + caption file); stores both. `GET /youtube/v3/captions?videoId=…` lists them.

Every request is recorded (method, path, query, headers, body). Faults are scriptable:
`token_error` (e.g. "invalid_grant"), `create_errors` (HTTP status and reason per session
create, in order), `chunk_faults` (500 or a dropped connection on the Nth chunk, after keeping
some of its bytes), `expire_after_chunks` (the session answers 404 from then on),
`thumbnail_error`, `caption_error`, and `revoke_access_tokens()` (the next call gets 401).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHUNK_MULTIPLE = 256 * 1024

CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-client-secret-never-printed"
REFRESH_TOKEN = "1//refresh-token-never-printed"
ACCESS_TOKEN_PREFIX = "ya29.access-token-never-printed-"
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN_PREFIX)


@dataclass
class ChunkFault:
    """What goes wrong on one chunk PUT: an HTTP `status` (e.g. 500), or, with status None,
    the connection is closed without an answer. `keep` bytes of the chunk are stored first
    (a server that took part of the chunk before failing)."""

    status: int | None = 500
    keep: int = 0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int | None = None  # None: the connection was dropped

    @property
    def content_range(self) -> str | None:
        return self.headers.get("content-range")


@dataclass
class UploadSession:
    id: str
    metadata: dict[str, Any]
    total: int
    content_type: str
    data: bytearray = field(default_factory=bytearray)
    video_id: str | None = None
    expired: bool = False


@dataclass
class Caption:
    video_id: str
    snippet: dict[str, Any]
    body: bytes
    content_type: str


@dataclass
class YouTubeServer:
    host: str = "127.0.0.1"
    port: int = 0
    chunk_multiple: int = CHUNK_MULTIPLE
    # faults
    token_error: str | None = None  # "invalid_grant", "invalid_client", or "500"
    create_errors: deque[tuple[int, str]] = field(default_factory=deque)
    chunk_faults: dict[int, ChunkFault] = field(default_factory=dict)  # 1-based chunk number
    expire_after_chunks: int | None = None
    thumbnail_error: tuple[int, str] | None = None
    caption_error: tuple[int, str] | None = None
    # state
    requests: list[Recorded] = field(default_factory=list)
    sessions: dict[str, UploadSession] = field(default_factory=dict)
    videos: dict[str, UploadSession] = field(default_factory=dict)
    thumbnails: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    captions: list[Caption] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)
    chunks_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    def start(self) -> YouTubeServer:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
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

    # ---- what tests look at ---------------------------------------------------------------

    def revoke_access_tokens(self) -> None:
        with self._lock:
            self.access_tokens.clear()

    def requests_to(self, path: str, method: str | None = None) -> list[Recorded]:
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]

    def chunk_requests(self) -> list[Recorded]:
        """Every PUT that carried video bytes (status queries left out), in order."""
        return [
            r
            for r in self.requests
            if r.method == "PUT" and r.content_range and not r.content_range.startswith("bytes */")
        ]

    def status_queries(self) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.method == "PUT" and (r.content_range or "").startswith("bytes */")
        ]

    def session_creates(self) -> list[Recorded]:
        return [
            r
            for r in self.requests_to("/upload/youtube/v3/videos", "POST")
            if r.query.get("uploadType") == "resumable"
        ]

    def video_resource(self, session: UploadSession) -> dict[str, Any]:
        assert session.video_id is not None
        status = dict(session.metadata.get("status", {}))
        status["uploadStatus"] = "uploaded"
        return {
            "kind": "youtube#video",
            "etag": "etag-" + session.video_id,
            "id": session.video_id,
            "snippet": session.metadata.get("snippet", {}),
            "status": status,
        }

    # ---- request handling (called from the handler, under the lock) ----------------------

    def handle(self, req: Recorded) -> tuple[int | None, dict[str, str], bytes]:
        """The answer to one request: status (None = drop the connection), headers, body."""
        if req.path == "/token" and req.method == "POST":
            return self._token(req)
        if not self._authorised(req):
            return _error(401, "authError", "Request had invalid authentication credentials.")
        if req.path == "/upload/youtube/v3/videos":
            if req.method == "POST" and req.query.get("uploadType") == "resumable":
                return self._create_session(req)
            if req.method == "PUT" and "upload_id" in req.query:
                return self._put(req)
        if req.path == "/upload/youtube/v3/thumbnails/set" and req.method == "POST":
            return self._thumbnail(req)
        if req.path == "/upload/youtube/v3/captions" and req.method == "POST":
            return self._caption(req)
        if req.path == "/youtube/v3/captions" and req.method == "GET":
            return self._caption_list(req)
        return _error(404, "notFound", f"no route {req.method} {req.path}")

    def _authorised(self, req: Recorded) -> bool:
        auth = req.headers.get("authorization", "")
        if "upload_id" in req.query and not auth:
            return True  # a session URI is itself the credential, as at Google
        return auth.startswith("Bearer ") and auth[7:] in self.access_tokens

    def _token(self, req: Recorded) -> tuple[int | None, dict[str, str], bytes]:
        form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if self.token_error == "500":
            return 500, {}, b"backend error"
        client_ok = (
            form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        )
        if self.token_error == "invalid_client" or not client_ok:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        if self.token_error == "invalid_grant" or form.get("refresh_token") != REFRESH_TOKEN:
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        token = ACCESS_TOKEN_PREFIX + secrets.token_hex(8)
        self.access_tokens.add(token)
        body = {
            "access_token": token,
            "expires_in": 3599,
            "scope": "https://www.googleapis.com/auth/youtube.upload",
            "token_type": "Bearer",
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _create_session(self, req: Recorded) -> tuple[int | None, dict[str, str], bytes]:
        if self.create_errors:
            status, reason = self.create_errors.popleft()
            return _error(status, reason, f"scripted {reason}")
        try:
            total = int(req.headers["x-upload-content-length"])
            metadata = json.loads(req.body)
        except (KeyError, ValueError):
            return _error(400, "badRequest", "X-Upload-Content-Length and a JSON body needed")
        session = UploadSession(
            id=secrets.token_urlsafe(12),
            metadata=metadata,
            total=total,
            content_type=req.headers.get("x-upload-content-type", ""),
        )
        self.sessions[session.id] = session
        location = (
            f"{self.base_url}/upload/youtube/v3/videos?uploadType=resumable&upload_id={session.id}"
        )
        return 200, {"Location": location, "Content-Type": "text/plain"}, b""

    def _put(self, req: Recorded) -> tuple[int | None, dict[str, str], bytes]:
        session = self.sessions.get(req.query["upload_id"])
        if session is None or session.expired:
            return _error(404, "notFound", "The upload session was not found or has expired.")
        content_range = req.headers.get("content-range", "")
        if not content_range.startswith("bytes "):
            return _error(400, "badContentRange", f"bad Content-Range {content_range!r}")
        spec, _, total_text = content_range[6:].partition("/")
        if int(total_text) != session.total:
            return _error(400, "badContentRange", "total differs from X-Upload-Content-Length")
        if spec == "*":
            return self._session_state(session)
        first, _, last = spec.partition("-")
        start, end = int(first), int(last)
        if start != len(session.data) or end - start + 1 != len(req.body) or end >= session.total:
            return _error(
                400,
                "badContentRange",
                f"chunk {start}-{end} does not continue the {len(session.data)} stored bytes",
            )
        self.chunks_received += 1
        fault = self.chunk_faults.get(self.chunks_received)
        if fault is not None:
            session.data += req.body[: fault.keep]
            if fault.status is None:
                return None, {}, b""
            return _error(fault.status, "backendError", "scripted server error")
        final = end + 1 == session.total
        kept = (
            len(req.body) if final else len(req.body) // self.chunk_multiple * self.chunk_multiple
        )
        session.data += req.body[:kept]
        if len(session.data) == session.total and session.video_id is None:
            session.video_id = f"vid{len(self.videos) + 1:08d}"
            self.videos[session.video_id] = session
        answer = self._session_state(session)
        if (
            self.expire_after_chunks is not None
            and self.chunks_received >= self.expire_after_chunks
        ):
            session.expired = True
            self.expire_after_chunks = None
        return answer

    def _session_state(self, session: UploadSession) -> tuple[int | None, dict[str, str], bytes]:
        if session.video_id is not None:
            body = json.dumps(self.video_resource(session)).encode()
            return 200, {"Content-Type": "application/json"}, body
        headers = {"Content-Type": "text/plain"}
        if session.data:
            headers["Range"] = f"bytes=0-{len(session.data) - 1}"
        return 308, headers, b""

    def _thumbnail(self, req: Recorded) -> tuple[int | None, dict[str, str], bytes]:
        if self.thumbnail_error:
            return _error(*self.thumbnail_error, "scripted thumbnail error")
        video_id = req.query.get("videoId", "")
        if video_id not in self.videos:
            return _error(404, "videoNotFound", f"no video {video_id}")
        self.thumbnails[video_id] = (req.body, req.headers.get("content-type", ""))
        body = {
            "kind": "youtube#thumbnailSetResponse",
            "items": [{"default": {"url": f"{self.base_url}/vi/{video_id}/default.jpg"}}],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _caption_list(self, req: Recorded) -> tuple[int | None, dict[str, str], bytes]:
        video_id = req.query.get("videoId", "")
        if video_id not in self.videos:
            return _error(404, "videoNotFound", f"no video {video_id}")
        items = [
            {"kind": "youtube#caption", "id": f"cap{i}", "snippet": c.snippet}
            for i, c in enumerate(self.captions, start=1)
            if c.video_id == video_id
        ]
        body = {"kind": "youtube#captionListResponse", "items": items}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _caption(self, req: Recorded) -> tuple[int | None, dict[str, str], bytes]:
        if self.caption_error:
            return _error(*self.caption_error, "scripted caption error")
        ctype = req.headers.get("content-type", "")
        if req.query.get("uploadType") != "multipart" or not ctype.startswith("multipart/related"):
            return _error(400, "badRequest", "captions need uploadType=multipart")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body
        )
        parts = list(message.iter_parts())  # type: ignore[attr-defined]
        if len(parts) != 2 or parts[0].get_content_type() != "application/json":
            return _error(400, "badRequest", "expected a JSON part and a media part")
        resource = json.loads(parts[0].get_payload(decode=True))
        snippet = resource.get("snippet", {})
        if snippet.get("videoId") not in self.videos:
            return _error(404, "videoNotFound", "no such video")
        media = parts[1].get_payload(decode=True)
        self.captions.append(
            Caption(snippet["videoId"], snippet, media, parts[1].get_content_type())
        )
        body = {"kind": "youtube#caption", "id": f"cap{len(self.captions)}", "snippet": snippet}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _error(status: int, reason: str, message: str) -> tuple[int | None, dict[str, str], bytes]:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "youtube", "reason": reason}],
        }
    }
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _oauth_error(status: int, error: str, description: str) -> tuple[int, dict[str, str], bytes]:
    body = {"error": error, "error_description": description}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _handler_for(state: YouTubeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Recorded(
                method=self.command,
                path=url.path,
                query={k: v[0] for k, v in parse_qs(url.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            with state._lock:
                status, headers, payload = state.handle(req)
                req.status = status
                state.requests.append(req)
            if status is None:
                self.close_connection = True  # drop it: no status line, no body
                return
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _serve

    return Handler
