"""A small OpenAI-compatible HTTP server for tests: chat completions and speech.

The real `openai` SDK talks to it over HTTP (`base_url=server.base_url`). Tests script what the
"model" answers: each queued `Reply` is used by one request, in order; with the queue empty,
chat answers with `default_chat` and speech with a real WAV whose length follows the text.
Every request is recorded (path, headers, JSON body) so tests can assert what was sent.
"""

from __future__ import annotations

import io
import json
import math
import struct
import threading
import time
import wave
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SPEECH_SECONDS_PER_CHAR = 0.06
SPEECH_RATE = 24_000


@dataclass
class Reply:
    """One scripted answer. `content` is the chat message text; `body` replaces the whole
    response body (bytes, sent as-is); `status` an HTTP error; `delay` seconds before answering."""

    content: str | None = None
    body: bytes | None = None
    status: int = 200
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class OpenAIServer:
    host: str = "127.0.0.1"
    port: int = 0
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    default_chat: str = '{"error": "no scripted reply"}'
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def queue(self, *replies: Reply | str) -> None:
        for reply in replies:
            self.replies.append(Reply(content=reply) if isinstance(reply, str) else reply)

    def start(self) -> OpenAIServer:
        server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def speech_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/audio/speech")]


def speech_wav(text: str, seconds_per_char: float = SPEECH_SECONDS_PER_CHAR) -> bytes:
    """A real mono 16-bit WAV: a tone whose length follows the text, like speech would."""
    seconds = max(0.3, len(text) * seconds_per_char)
    frames = int(seconds * SPEECH_RATE)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SPEECH_RATE)
        samples = (
            int(8000 * math.sin(2 * math.pi * 220 * i / SPEECH_RATE) * _syllable(i))
            for i in range(frames)
        )
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buf.getvalue()


def _syllable(i: int) -> float:
    return 0.6 + 0.4 * ((i // 2400) % 2)


def _chat_body(content: str, model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
    ).encode()


def _handler_for(state: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            state.requests.append(Recorded(self.path, dict(self.headers.items()), body))
            reply = state.replies.popleft() if state.replies else None
            if reply is not None and reply.delay:
                time.sleep(reply.delay)
            if reply is not None and reply.status != 200:
                err = json.dumps({"error": {"message": "scripted failure", "type": "test"}})
                self._send(reply.status, err.encode(), "application/json")
                return
            if self.path.endswith("/chat/completions"):
                if reply is not None and reply.body is not None:
                    self._send(200, reply.body, reply.content_type)
                    return
                content = state.default_chat
                if reply is not None and reply.content is not None:
                    content = reply.content
                self._send(200, _chat_body(content, body.get("model", "test")), "application/json")
            elif self.path.endswith("/audio/speech"):
                if reply is not None and reply.body is not None:
                    self._send(200, reply.body, reply.content_type)
                    return
                self._send(200, speech_wav(str(body.get("input", ""))), "audio/wav")
            else:
                self._send(404, b'{"error": {"message": "not found"}}', "application/json")

        def _send(self, status: int, payload: bytes, content_type: str) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

    return Handler
