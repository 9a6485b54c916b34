"""The preview page (`shorts serve`): every project with its thumbnail, status and a player,
and the approve/reject decision for projects added with `--review`.

It reads what the CLI reads — the catalog, the media store and the Dagster instance under
SHORTS_HOME — and records decisions through `review.record_review`, the function behind
`shorts approve` and `shorts reject`. Standard library HTTP server, no JavaScript.

Routes:

    GET  /                              the projects, newest first
    GET  /projects/KEY                  player, review, URLs, quality checks, script, subtitles
    POST /projects/KEY/approve          record an approval (form: token, by)
    POST /projects/KEY/reject           record a rejection (form: token, reason, by)
    GET  /media/KEY/NAME                video.mp4, thumbnail.jpg or subtitles.srt of that
                                        project, with HTTP Range support (HEAD too)
    GET  /static/preview.css            the stylesheet

It is a local tool with no login: it binds to 127.0.0.1 unless told otherwise. A page from
another site cannot act through it: requests must name this server in their Host header (no
DNS rebinding), forms carry a random token made when the server starts, a POST whose Origin
is another site is refused, and every response forbids framing and cross-origin embedding.
Every value from the catalog (titles are user input) is HTML-escaped; the pages carry a
Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import ipaddress
import os
import secrets
import socket
import sys
import threading
import traceback
import urllib.parse
import webbrowser
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import IO, Any

import click

from shorts_pipeline.home import dagster_home
from shorts_pipeline.keys import UnsafeKeyError, validate_project_key
from shorts_pipeline.models import ProjectSpec, ProjectStatus
from shorts_pipeline.resources.catalog import CatalogResource, ProjectNotFoundError
from shorts_pipeline.resources.media_store import MediaStoreError, MediaStoreResource
from shorts_pipeline.review import Decision, ReviewError, default_reviewer, record_review

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700

# The only files the media route serves, each under `projects/KEY/` in the media store.
MEDIA_TYPES = {
    "video.mp4": "video/mp4",
    "thumbnail.jpg": "image/jpeg",
    "subtitles.srt": "text/plain; charset=utf-8",
}
CHUNK_BYTES = 256 * 1024
MAX_FORM_BYTES = 64 * 1024
MAX_TEXT_BYTES = 256 * 1024  # subtitles shown inline, at most

PAGE_CSP = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: Chromium then sends `Origin: null` with our own forms.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
REVIEWABLE = (ProjectStatus.rendered, ProjectStatus.uploaded)


class ServeError(click.ClickException):
    """The preview server cannot start (port taken, address not available)."""

    exit_code = 2


def run_server(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, open_browser: bool = False
) -> None:
    """Serve the preview page until Ctrl-C; print its URL first (and open it if asked)."""
    server = make_server(host, port)
    print(f"shorts preview on {server.url}  (Ctrl-C to stop)", flush=True)
    if not _is_loopback(host):
        print(
            f"warning: listening on {host}, not only this machine: anyone who can reach "
            "it can approve and reject videos (there is no login)",
            file=sys.stderr,
            flush=True,
        )
    threading.Thread(target=server.records.warm, daemon=True).start()
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def make_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    catalog: CatalogResource | None = None,
    media_store: MediaStoreResource | None = None,
) -> PreviewServer:
    """A bound, not yet serving, preview server (`port=0` picks a free port)."""
    try:
        return PreviewServer(host, port, catalog or CatalogResource(), media_store)
    except OSError as err:
        reason = err.strerror or str(err)
        raise ServeError(
            f"cannot listen on {host}:{port}: {reason}. Pick another port with --port, "
            "or stop what uses it"
        ) from err


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        host: str,
        port: int,
        catalog: CatalogResource,
        media_store: MediaStoreResource | None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), PreviewHandler)
        self.catalog = catalog
        self.media_store = media_store or MediaStoreResource()
        # One token per process: forms made by an earlier server are refused (reload them).
        self.form_token = secrets.token_urlsafe(32)
        self.port = int(self.server_address[1])
        self.bound_host = host
        self.hosts = HostPolicy.for_address(host, self.port)
        self.records = DagsterRecords()

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.bound_host in ("0.0.0.0", "") else self.bound_host
        if shown == "::":
            shown = "::1"
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser drops connections it no longer needs (a player seeking): not an error.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class PreviewHandler(BaseHTTPRequestHandler):
    server: PreviewServer
    protocol_version = "HTTP/1.1"
    server_version = "shorts-preview"

    # ---- dispatch ---------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            if not self._host_allowed():
                return
            parts = urllib.parse.urlsplit(self.path)
            # Split before decoding: an encoded `/` or `..` stays inside one segment, where
            # key validation refuses it.
            segments = [urllib.parse.unquote(s) for s in parts.path.split("/")[1:]]
            query = urllib.parse.parse_qs(parts.query)
            self._route(method, segments, query)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            traceback.print_exc(file=sys.stderr)
            with contextlib.suppress(Exception):
                self._page(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    "Error",
                    "<p class=error>The preview failed on this request; the server's "
                    "terminal shows why.</p>",
                )

    def _route(self, method: str, seg: list[str], query: dict[str, list[str]]) -> None:
        if seg in ([""], []):
            if self._allow(method, "GET", "HEAD"):
                self._index(method)
        elif len(seg) == 2 and seg[0] == "projects":
            if self._allow(method, "GET", "HEAD"):
                self._project(method, seg[1], query)
        elif len(seg) == 3 and seg[0] == "projects" and seg[2] in ("approve", "reject"):
            if self._allow(method, "POST"):
                self._decide(seg[1], seg[2])
        elif len(seg) == 3 and seg[0] == "media":
            if self._allow(method, "GET", "HEAD"):
                self._media(method, seg[1], seg[2])
        elif seg == ["static", "preview.css"]:
            if self._allow(method, "GET", "HEAD"):
                css = _stylesheet()
                self._send(HTTPStatus.OK, css, "text/css; charset=utf-8", method, cache=True)
        else:
            self._page(
                HTTPStatus.NOT_FOUND, "Not found", "<p>No such page. <a href=/>All projects</a></p>"
            )

    def _allow(self, method: str, *allowed: str) -> bool:
        if method in allowed:
            return True
        self._page(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "Method not allowed",
            f"<p>{h(method)} is not allowed here.</p>",
            method=method,
            extra={"Allow": ", ".join(allowed)},
        )
        return False

    # ---- pages ------------------------------------------------------------------------

    def _index(self, method: str) -> None:
        catalog, store = self.server.catalog, self.server.media_store
        projects = sorted(catalog.list_projects(), key=lambda p: p.created_at, reverse=True)
        rows = []
        for p in projects:
            link = f"/projects/{p.key}"
            thumb = (
                f'<a href="{link}"><img class=thumb src="/media/{p.key}/thumbnail.jpg" alt=""></a>'
                if _stored(store, p, "thumbnail.jpg")
                else '<span class="thumb none">no video yet</span>'
            )
            rows.append(
                "<tr>"
                f"<td>{thumb}</td>"
                f'<td><a class=title href="{link}">{h(p.title)}</a><br><code>{h(p.key)}</code></td>'
                f"<td>{h(p.format.value)}</td>"
                f"<td>{_status_badge(p.status)}</td>"
                f"<td>{h(_review_state(catalog, p))}</td>"
                f"<td>{h(_when(p.publish_at))}</td>"
                "</tr>"
            )
        body = (
            "<table class=projects><thead><tr><th></th><th>title</th><th>format</th>"
            "<th>status</th><th>review</th><th>publish at</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
            if rows
            else "<p>No projects yet: add one with <code>shorts add TITLE</code>.</p>"
        )
        self._page(HTTPStatus.OK, "Projects", body, method=method, heading="Projects")

    def _project(
        self,
        method: str,
        key: str,
        query: dict[str, list[str]],
        *,
        status: HTTPStatus = HTTPStatus.OK,
        error: str | None = None,
        form: dict[str, str] | None = None,
    ) -> None:
        spec = self._spec(key)
        if spec is None:
            return
        catalog, store = self.server.catalog, self.server.media_store
        records = self.server.records.for_project(spec.key)
        parts = []
        if error:
            parts.append(f'<p class="error" role="alert">{h(error)}</p>')
        elif query.get("decision") and spec.review:
            review = catalog.review(spec.key)
            if review.state in ("approved", "rejected"):
                parts.append(
                    f'<p class="notice" role="status">{h(review.state.capitalize())} by '
                    f"{h(review.by or '?')}.</p>"
                )
        if _stored(store, spec, "video.mp4"):
            poster = (
                f' poster="/media/{spec.key}/thumbnail.jpg"'
                if _stored(store, spec, "thumbnail.jpg")
                else ""
            )
            player = (
                f"<video id=player controls preload=metadata playsinline{poster} "
                f'src="/media/{spec.key}/video.mp4"></video>'
                f'<p><a href="/media/{spec.key}/video.mp4" download="{spec.key}.mp4">'
                "Download the MP4</a></p>"
            )
        else:
            player = (
                f"<p class='thumb none big'>No video yet: <code>shorts run {h(spec.key)}</code> "
                "renders it.</p>"
            )
        parts.append(
            f"<div class=project><div class=player>{player}</div><div class=about>"
            f"{_facts(spec, catalog)}{self._review_section(spec, form or {})}</div></div>"
        )
        parts.append(_links_section(spec, catalog, records))
        parts.append(_checks_section(records))
        parts.append(_script_section(spec, catalog, records))
        parts.append(_subtitles_section(spec, store))
        self._page(status, spec.title, "".join(parts), method=method, heading=spec.title)

    def _review_section(self, spec: ProjectSpec, form: dict[str, str]) -> str:
        if not spec.review:
            return (
                "<section><h2>Review</h2><p class=muted>Added without <code>--review</code>: "
                "published without approval.</p></section>"
            )
        review = self.server.catalog.review(spec.key)
        state = review.state or "nothing to review yet"
        lines = [f"<p>State: <strong class=review-{h(review.state or 'none')}>{h(state)}</strong>"]
        if review.by and review.state in ("approved", "rejected"):
            lines.append(f" by {h(review.by)}, {h(_when(review.at))}")
        lines.append("</p>")
        if review.reason:
            lines.append(f"<p>Reason: {h(review.reason)}</p>")
        if spec.status in REVIEWABLE:
            token = h(self.server.form_token)
            who = h(form.get("by", ""))
            reviewer = h(default_reviewer())
            lines.append(
                '<div class="review-forms">'
                f'<form method=post action="/projects/{spec.key}/approve">'
                f'<input type=hidden name=token value="{token}">'
                f'<label>Reviewer <input name=by value="{who}" placeholder="{reviewer}"></label>'
                "<button type=submit class=approve>Approve</button></form>"
                f'<form method=post action="/projects/{spec.key}/reject">'
                f'<input type=hidden name=token value="{token}">'
                f'<label>Reviewer <input name=by value="{who}" placeholder="{reviewer}"></label>'
                "<label>Reason <textarea name=reason required rows=2>"
                f"{h(form.get('reason', ''))}</textarea></label>"
                "<button type=submit class=reject>Reject</button></form></div>"
            )
        else:
            lines.append(
                f"<p class=muted>Nothing to decide while the project is {h(spec.status.value)}.</p>"
            )
        return "<section><h2>Review</h2>" + "".join(lines) + "</section>"

    # ---- decisions --------------------------------------------------------------------

    def _decide(self, key: str, action: str) -> None:
        form = self._read_form()
        if form is None:
            return
        if not self._same_origin():
            return
        if not hmac.compare_digest(form.get("token", ""), self.server.form_token):
            self._page(
                HTTPStatus.FORBIDDEN,
                "Form expired",
                "<p class=error>This form is not from this preview server (it may have "
                "restarted since the page was loaded): reload the page and decide again.</p>",
            )
            return
        spec = self._spec(key)
        if spec is None:
            return
        decision: Decision = "approved" if action == "approve" else "rejected"
        try:
            record_review(
                self.server.catalog,
                spec.key,
                decision,
                by=form.get("by") or None,
                reason=form.get("reason") if decision == "rejected" else None,
            )
        except ReviewError as err:
            self._project(
                "GET",
                spec.key,
                {},
                status=HTTPStatus.UNPROCESSABLE_ENTITY,
                error=f"Not {decision}: {err}",
                form=form,
            )
            return
        # Post/Redirect/Get: reloading the page does not post the decision again.
        self._redirect(f"/projects/{spec.key}?decision={decision}")

    def _read_form(self) -> dict[str, str] | None:
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if kind != "application/x-www-form-urlencoded" or not 0 <= length <= MAX_FORM_BYTES:
            self.close_connection = True
            self._page(
                HTTPStatus.BAD_REQUEST,
                "Bad request",
                "<p class=error>Expected a form (application/x-www-form-urlencoded, at most "
                f"{MAX_FORM_BYTES // 1024} KB).</p>",
            )
            return None
        raw = self.rfile.read(length).decode("utf-8", "replace")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def _same_origin(self) -> bool:
        """Refuse a POST a browser says came from another site (Origin, Sec-Fetch-Site)."""
        origin = self.headers.get("Origin")
        own = f"http://{self.headers.get('Host', '')}"
        site = self.headers.get("Sec-Fetch-Site")
        if (origin is not None and origin != own) or site not in (None, "same-origin", "none"):
            self._page(
                HTTPStatus.FORBIDDEN,
                "Refused",
                "<p class=error>Refused: this decision was sent from another site "
                f"({h(origin or site or '?')}). Open {h(own)}/ and decide there.</p>",
            )
            return False
        return True

    def _host_allowed(self) -> bool:
        """DNS rebinding defence: answer only to the names this server is reached by."""
        host = (self.headers.get("Host") or "").strip().lower()
        if self.server.hosts.allows(host):
            return True
        self.close_connection = True
        where = host or "missing"
        self._plain(
            HTTPStatus.BAD_REQUEST,
            f"This preview answers to {self.server.url} only (Host: {where}).",
            "GET",
        )
        return False

    # ---- media ------------------------------------------------------------------------

    def _media(self, method: str, key: str, name: str) -> None:
        content_type = MEDIA_TYPES.get(name)
        if content_type is None:
            self._plain(HTTPStatus.NOT_FOUND, f"not a preview file: {name!r}", method)
            return
        try:
            validate_project_key(key)
            spec = self.server.catalog.get_project(key)
        except (UnsafeKeyError, ProjectNotFoundError) as err:
            self._plain(HTTPStatus.NOT_FOUND, str(err), method)
            return
        store = self.server.media_store
        try:
            opened = open_media(store, _media_key(spec, name))
        except FileNotFoundError:
            self._plain(HTTPStatus.NOT_FOUND, f"{spec.key} has no {name} yet", method)
            return
        except MediaStoreError as err:
            self._plain(HTTPStatus.BAD_GATEWAY, str(err), method)
            return
        with opened:
            self._send_ranges(method, opened, content_type)

    def _send_ranges(self, method: str, media: OpenedMedia, content_type: str) -> None:
        size = media.size
        if_range = self.headers.get("If-Range")
        header = self.headers.get("Range")
        if if_range is not None and if_range != media.etag:
            header = None  # the client's copy is another version: send it all
        try:
            wanted = parse_range(header, size)
        except RangeNotSatisfiable:
            self._plain(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                f"range {header} is outside the file ({size} bytes)",
                method,
                extra={"Content-Range": f"bytes */{size}"},
            )
            return
        start, end = wanted if wanted else (0, size - 1)
        length = max(0, end - start + 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if wanted else HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if media.etag:
            self.send_header("ETag", media.etag)
        self.send_header("Cache-Control", "no-cache")
        self._security_headers()
        self.end_headers()
        if method == "HEAD" or length == 0:
            return
        media.file.seek(start)
        remaining = length
        while remaining > 0:
            block = media.file.read(min(CHUNK_BYTES, remaining))
            if not block:  # replaced under us: the promised length cannot be kept
                self.close_connection = True
                return
            self.wfile.write(block)
            remaining -= len(block)

    # ---- helpers ----------------------------------------------------------------------

    def _spec(self, key: str) -> ProjectSpec | None:
        try:
            return self.server.catalog.get_project(key)
        except (UnsafeKeyError, ProjectNotFoundError) as err:
            self._page(
                HTTPStatus.NOT_FOUND,
                "Not found",
                f"<p class=error>{h(err)}</p><p><a href=/>All projects</a></p>",
            )
            return None

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self._security_headers()
        self.end_headers()

    def _page(
        self,
        status: HTTPStatus,
        title: str,
        body: str,
        *,
        method: str = "GET",
        heading: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        document = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>{h(title)} · shorts preview</title>"
            '<link rel=stylesheet href="/static/preview.css"></head><body>'
            '<header><a class=home href="/">shorts preview</a></header><main>'
            f"<h1>{h(heading or title)}</h1>{body}</main></body></html>"
        )
        headers = {"Content-Security-Policy": PAGE_CSP, **(extra or {})}
        self._send(status, document.encode(), "text/html; charset=utf-8", method, extra=headers)

    def _plain(
        self, status: HTTPStatus, text: str, method: str, extra: dict[str, str] | None = None
    ) -> None:
        self._send(status, f"{text}\n".encode(), "text/plain; charset=utf-8", method, extra=extra)

    def _send(
        self,
        status: HTTPStatus,
        data: bytes,
        content_type: str,
        method: str,
        *,
        cache: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=300" if cache else "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self._security_headers()
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def _security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Quiet while things work (a player makes many range requests); say what failed.
        if isinstance(code, int) and code >= 400 and code != 404:
            super().log_request(code, size)


# ---- media --------------------------------------------------------------------------------


@dataclass
class OpenedMedia:
    file: IO[bytes]
    size: int
    etag: str | None

    def __enter__(self) -> OpenedMedia:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def open_media(store: MediaStoreResource, key: str) -> OpenedMedia:
    """Open a stored file for reading at any offset; its size and version tag come from the
    same open file, so a render replacing it meanwhile cannot mix two versions."""
    path = store.full_path(key)
    if store.is_local:
        f = open(path, "rb")  # noqa: SIM115 - closed by OpenedMedia
        st = os.fstat(f.fileno())
        return OpenedMedia(f, st.st_size, f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
    try:
        remote = store.fs.open(path, "rb", block_size=4 * CHUNK_BYTES)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise MediaStoreError(f"reading {key} from the media store failed: {err}") from err
    details = getattr(remote, "details", None) or store.fs.info(path)
    etag = details.get("ETag")
    return OpenedMedia(remote, int(details["size"]), str(etag) if etag else None)


class RangeNotSatisfiable(ValueError):
    """A Range header that names no byte of the file (answered with 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last; inclusive) a `Range` header asks for, or None to
    send the whole file: no header, another unit, several ranges (allowed to be ignored by
    RFC 9110) or a malformed one. Raise RangeNotSatisfiable when it starts past the end."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header)
    return start, min(end, size - 1)


def _media_key(spec: ProjectSpec, name: str) -> str:
    from shorts_pipeline.assets.common import project_media_key

    return project_media_key(spec, name)


def _stored(store: MediaStoreResource, spec: ProjectSpec, name: str) -> bool:
    try:
        return store.exists(_media_key(spec, name))
    except (MediaStoreError, OSError):
        return False


# ---- Dagster records ----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    severity: str  # ERROR (blocking the publish) or WARN
    detail: str  # the first few measured values


@dataclass
class ProjectRecords:
    """What the Dagster instance knows about one project's last render."""

    script_markdown: str | None = None
    upload_urls: dict[str, str] | None = None
    checks: list[CheckOutcome] | None = None  # those of the run that made the current video
    problem: str | None = None


class DagsterRecords:
    """Reads the Dagster instance under SHORTS_HOME (DAGSTER_HOME), made on first use."""

    def __init__(self) -> None:
        self._instance: Any = None
        self._lock = threading.Lock()

    def for_project(self, key: str) -> ProjectRecords:
        try:
            with self._lock:
                return _project_records(self._open(), key)
        except Exception as err:  # the page still shows what the catalog and store have
            return ProjectRecords(problem=f"{type(err).__name__}: {err}".splitlines()[0][:300])

    def warm(self) -> None:
        """Open the instance now (seconds on a busy machine), not on the first page."""
        with contextlib.suppress(Exception), self._lock:
            self._open()

    def _open(self) -> Any:
        import dagster as dg

        if self._instance is None:
            self._instance = dg.DagsterInstance.from_config(str(dagster_home()))
        return self._instance


def _project_records(instance: Any, key: str) -> ProjectRecords:
    import dagster as dg

    def latest(asset: str) -> Any:
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
        ).records
        return found[0] if found else None

    records = ProjectRecords()
    script = latest("script")
    if script is not None:
        entry = script.asset_materialization.metadata.get("script")
        records.script_markdown = str(entry.value) if entry is not None else None
    upload = latest("upload")
    if upload is not None:
        meta = upload.asset_materialization.metadata
        records.upload_urls = {
            label: str(meta[name].value)
            for label, name in (("video", "url"), ("subtitles", "subtitles"))
            if name in meta and str(meta[name].value) != "none"
        }
    video = latest("video")
    if video is not None:
        records.checks = []
        events = instance.all_logs(video.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for event in events:
            evaluation = event.dagster_event.event_specific_data
            if evaluation.partition not in (None, key):
                continue
            detail = ", ".join(
                f"{name}={getattr(value, 'value', value)}"
                for name, value in list(evaluation.metadata.items())[:3]
            )
            records.checks.append(
                CheckOutcome(
                    asset=evaluation.asset_key.to_user_string(),
                    name=evaluation.check_name,
                    passed=evaluation.passed,
                    severity=evaluation.severity.value,
                    detail=detail[:200],
                )
            )
    return records


# ---- page sections ------------------------------------------------------------------------


def _facts(spec: ProjectSpec, catalog: CatalogResource) -> str:
    rows = [
        ("key", f"<code>{h(spec.key)}</code>"),
        ("format", h(spec.format.value)),
        ("status", _status_badge(spec.status)),
        ("review", h(_review_state(catalog, spec))),
        ("created", h(_when(spec.created_at))),
        ("publish at", h(_when(spec.publish_at))),
    ]
    error = catalog.last_error(spec.key)
    if error and spec.status is ProjectStatus.failed:
        rows.append(("last error", f"<span class=error>{h(error)}</span>"))
    cells = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f"<dl class=facts>{cells}</dl>"


def _links_section(spec: ProjectSpec, catalog: CatalogResource, records: ProjectRecords) -> str:
    items = [
        f"<li>upload ({h(label)}): {_link(url)}</li>"
        for label, url in (records.upload_urls or {}).items()
    ]
    for pub in catalog.publications(spec.key):
        where = _link(pub.url) if pub.url else "no URL yet"
        error = f" — <span class=error>{h(pub.last_error)}</span>" if pub.last_error else ""
        items.append(
            f"<li>published on {h(pub.publisher)}: {h(pub.state)} "
            f"(attempt {pub.attempts}) {where}{error}</li>"
        )
    if not items:
        return ""
    return "<section><h2>Upload and publication</h2><ul>" + "".join(items) + "</ul></section>"


def _checks_section(records: ProjectRecords) -> str:
    if records.problem:
        return (
            "<section><h2>Quality checks</h2><p class=muted>The Dagster records cannot be "
            f"read: {h(records.problem)}</p></section>"
        )
    if not records.checks:
        return ""
    failed = [c for c in records.checks if not c.passed]
    passed = len(records.checks) - len(failed)
    rows = "".join(
        f"<tr class={'pass' if c.passed else 'fail'}><td>{h(c.asset)}</td><td>{h(c.name)}</td>"
        f"<td>{'passed' if c.passed else h(f'failed ({c.severity.lower()})')}</td>"
        f"<td>{h(c.detail)}</td></tr>"
        for c in failed + [c for c in records.checks if c.passed]
    )
    return (
        "<section><h2>Quality checks</h2>"
        f"<p>{passed} of {len(records.checks)} passed in the run that made this video.</p>"
        f"<details{' open' if failed else ''}><summary>every check</summary>"
        f"<table class=checks>{rows}</table></details></section>"
    )


def _script_section(spec: ProjectSpec, catalog: CatalogResource, records: ProjectRecords) -> str:
    edited = catalog.script_override(spec.key)
    text = edited.to_markdown() if edited is not None else records.script_markdown
    if not text:
        return ""
    note = " (edited)" if edited is not None else ""
    return (
        f"<section><h2>Script{note}</h2><details><summary>show</summary>"
        f"<pre class=script>{h(text)}</pre></details></section>"
    )


def _subtitles_section(spec: ProjectSpec, store: MediaStoreResource) -> str:
    if not _stored(store, spec, "subtitles.srt"):
        return ""
    try:
        with open_media(store, _media_key(spec, "subtitles.srt")) as media:
            text = media.file.read(MAX_TEXT_BYTES).decode("utf-8", "replace")
    except (FileNotFoundError, MediaStoreError):
        return ""
    return (
        "<section><h2>Subtitles</h2><details><summary>show</summary>"
        f'<pre class=subtitles>{h(text)}</pre></details><p><a href="/media/{spec.key}/'
        'subtitles.srt">subtitles.srt</a></p></section>'
    )


def _review_state(catalog: CatalogResource, spec: ProjectSpec) -> str:
    if not spec.review:
        return "not required"
    return catalog.review(spec.key).state or "awaiting a render"


def _status_badge(status: ProjectStatus) -> str:
    return f"<span class='status status-{h(status.value)}'>{h(status.value)}</span>"


def _link(url: str) -> str:
    """A link only for web URLs: a stored `javascript:` URL must never become clickable."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return f'<a href="{h(url)}" rel="noreferrer noopener">{h(url)}</a>'
    return f"<code>{h(url)}</code>"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _stylesheet() -> bytes:
    return (resources.files("shorts_pipeline") / "serve_static" / "preview.css").read_bytes()


# ---- hosts ----------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    """The Host headers this server answers (DNS rebinding defence): loopback names always;
    bound elsewhere, also that address and this machine's names; bound to every interface,
    any IP literal. Never another domain name, and only with the server's port."""

    port: int
    names: frozenset[str]
    any_ip: bool = False

    @classmethod
    def for_address(cls, host: str, port: int) -> HostPolicy:
        names = {"127.0.0.1", "localhost", "[::1]"}
        if _is_loopback(host):
            return cls(port, frozenset(names))
        names |= {_bracket(host.lower()), socket.gethostname().lower(), socket.getfqdn().lower()}
        return cls(port, frozenset(names), any_ip=host in ("", "0.0.0.0", "::"))

    def allows(self, header: str) -> bool:
        name, port = _split_host(header.strip().lower())
        if port != str(self.port):
            return False
        if name in self.names:
            return True
        if not self.any_ip:
            return False
        try:
            ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
        except ValueError:
            return False
        return True


def _split_host(header: str) -> tuple[str, str]:
    """`name:port` (`[v6]:port`) into its parts; no port means HTTP's 80."""
    if header.startswith("["):
        name, _, rest = header.partition("]")
        return f"{name}]", rest[1:] if rest.startswith(":") else ("80" if not rest else "")
    name, colon, port = header.partition(":")
    return name, port if colon else "80"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
