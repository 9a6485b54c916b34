"""The preview page (`shorts serve`): what it shows, how it streams media, how it decides.

A real server on a free loopback port, real HTTP requests (http.client, so paths reach the
server exactly as written), the real catalog and media store under a temp SHORTS_HOME.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shorts_pipeline.models import (
    ProjectStatus,
    PublishedVideo,
    ScriptChapter,
    ScriptScene,
    VideoScript,
)
from shorts_pipeline.render.synth import ClipRecipe, make_clip
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.media_store import MediaStoreResource
from shorts_pipeline.serve import PreviewServer, ServeError, make_server, parse_range
from tests.helpers import free_port

HOSTILE_TITLE = "<script>alert('x')</script> \"quoted\" & <img src=x onerror=alert(1)>"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


class Preview:
    def __init__(self, server: PreviewServer) -> None:
        self.server = server
        self.port = server.port
        self.origin = f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            if body is not None:
                sent["Content-Length"] = str(len(body))
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, {k.replace("_", "-"): v for k, v in headers.items()})

    def post_form(self, path: str, fields: dict[str, str], **headers: str) -> Reply:
        extra = {"Origin": self.origin, **{k.replace("_", "-"): v for k, v in headers.items()}}
        return self.request(
            "POST",
            path,
            {"Content-Type": "application/x-www-form-urlencoded", **extra},
            urllib.parse.urlencode(fields).encode(),
        )

    def token(self, key: str) -> str:
        page = self.get(f"/projects/{key}").text
        match = re.search(r'name=token value="([^"]+)"', page)
        assert match, "the project page has no review form"
        return match.group(1)


@pytest.fixture
def preview(shorts_home: Path) -> Iterator[Preview]:
    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Preview(server)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "small.mp4"
    return make_clip(path, ClipRecipe(width=160, height=284, seconds=1.0, fps=10, audio="mono"))


def rendered_project(
    title: str, video: Path | None, *, review: bool = True, media_url: str | None = None
) -> str:
    """A project as a finished render leaves it: its files in the store, status rendered,
    review pending (the state the video asset records)."""
    catalog = CatalogResource()
    spec = catalog.add_project(title, review=review)
    if video is not None:
        store = MediaStoreResource(url=media_url)
        store.put(video, f"projects/{spec.key}/video.mp4")
        store.put_bytes(b"\xff\xd8\xff\xe0 not really a jpeg", f"projects/{spec.key}/thumbnail.jpg")
    catalog.set_status(spec.key, ProjectStatus.rendered)
    if review:
        catalog.set_review(spec.key, "pending", by="render")
    return spec.key


# ---- pages ----------------------------------------------------------------------------------


def test_pages_escape_a_hostile_title_and_allow_no_script(preview: Preview, small_mp4: Path):
    key = rendered_project(HOSTILE_TITLE, small_mp4)
    for path in ("/", f"/projects/{key}"):
        reply = preview.get(path)
        assert reply.status == 200
        page = reply.text
        assert "<script>" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
        assert "&quot;quoted&quot; &amp; &lt;img src=x onerror=alert(1)&gt;" in page
        csp = reply.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script" not in csp
        assert "frame-ancestors 'none'" in csp
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["Cache-Control"] == "no-store"
    index = preview.get("/").text
    assert f'href="/projects/{key}"' in index
    assert f'src="/media/{key}/thumbnail.jpg"' in index
    assert "rendered" in index and "pending" in index
    project = preview.get(f"/projects/{key}").text
    assert (
        f'<video id=player controls preload=metadata playsinline poster="/media/{key}/' in project
    )
    assert f'src="/media/{key}/video.mp4"' in project
    assert f'action="/projects/{key}/approve"' in project
    assert f'action="/projects/{key}/reject"' in project
    css = preview.get("/static/preview.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")


def test_project_page_shows_script_subtitles_and_urls_and_links_only_web_urls(
    preview: Preview, small_mp4: Path
):
    key = rendered_project("Everything on one page", small_mp4, review=False)
    catalog = CatalogResource()
    scene = ScriptScene(narration="A line <b>with markup</b> the page must not run.")
    catalog.set_script_override(
        key, VideoScript(title="Everything", chapters=[ScriptChapter(title="One", scenes=[scene])])
    )
    MediaStoreResource().put_bytes(
        b"1\n00:00:00,000 --> 00:00:01,000\nHello <i>there</i>\n", f"projects/{key}/subtitles.srt"
    )
    for idem, url in (("a", "https://videos.example/watch?v=1&t=2"), ("b", "javascript:alert(1)")):
        catalog.claim_publication(idem, key, f"channel-{idem}")
        catalog.finish_publication(
            PublishedVideo(
                platform="local",
                video_id=idem,
                url=url,
                published_at=datetime.now(UTC),
                idempotency_key=idem,
            )
        )
    page = preview.get(f"/projects/{key}").text
    assert "Script (edited)" in page
    assert "A line &lt;b&gt;with markup&lt;/b&gt; the page must not run." in page
    assert "Hello &lt;i&gt;there&lt;/i&gt;" in page
    assert '<a href="https://videos.example/watch?v=1&amp;t=2"' in page
    assert "<code>javascript:alert(1)</code>" in page
    assert 'href="javascript:' not in page
    assert "published without approval" in page and "action=" not in page
    srt = preview.get(f"/media/{key}/subtitles.srt")
    assert srt.status == 200 and srt.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert srt.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_pages_and_projects_are_404_with_the_reason(preview: Preview):
    missing = preview.get("/projects/no-such-project-12345678")
    assert missing.status == 404
    assert "no project &#x27;no-such-project-12345678&#x27; in the catalog" in missing.text
    hostile = preview.get("/projects/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert hostile.status == 404 and "<script>" not in hostile.text
    assert "is not a project key" in hostile.text
    assert preview.get("/nothing/here").status == 404
    wrong = preview.request("POST", "/")
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET, HEAD"


# ---- media --------------------------------------------------------------------------------


def test_media_supports_byte_ranges_like_a_player_asks(preview: Preview, small_mp4: Path):
    key = rendered_project("Ranges", small_mp4)
    data = small_mp4.read_bytes()
    size = len(data)
    path = f"/media/{key}/video.mp4"

    whole = preview.get(path)
    assert whole.status == 200 and whole.body == data
    assert whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Length"] == str(size)
    assert whole.headers["Cross-Origin-Resource-Policy"] == "same-origin"

    cases = {
        "bytes=0-1": (0, 1),  # what Chromium asks first
        "bytes=100-199": (100, 199),
        f"bytes={size - 10}-": (size - 10, size - 1),
        "bytes=-16": (size - 16, size - 1),
        f"bytes=5-{size * 2}": (5, size - 1),  # an end past the file is clipped
        f"bytes=-{size * 2}": (0, size - 1),
    }
    for header, (first, last) in cases.items():
        part = preview.get(path, Range=header)
        assert part.status == 206, header
        assert part.body == data[first : last + 1], header
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{size}", header
        assert part.headers["Content-Length"] == str(last - first + 1), header

    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        refused = preview.get(path, Range=header)
        assert refused.status == 416, header
        assert refused.headers["Content-Range"] == f"bytes */{size}"

    # Several ranges, other units and nonsense may be ignored: the whole file, 200.
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=a-b", "bytes 0-1"):
        ignored = preview.get(path, Range=header)
        assert ignored.status == 200 and ignored.body == data, header

    etag = whole.headers["ETag"]
    same = preview.get(path, Range="bytes=0-9", If_Range=etag)
    assert same.status == 206 and same.body == data[:10]
    changed = preview.get(path, Range="bytes=0-9", If_Range='"another-version"')
    assert changed.status == 200 and changed.body == data

    head = preview.request("HEAD", path, {"Range": "bytes=10-19"})
    assert head.status == 206 and head.body == b""
    assert head.headers["Content-Range"] == f"bytes 10-19/{size}"


def test_parse_range_rules():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-", 100) == (0, 99)
    assert parse_range("BYTES= 10 - 20", 100) == (10, 20)
    assert parse_range("bytes=-1", 100) == (99, 99)
    assert parse_range("bytes=0-0,-1", 100) is None


def test_media_streams_ranges_from_s3(bucket: str, small_mp4: Path, shorts_home: Path):
    media_url = f"s3://{bucket}/media"
    key = rendered_project("On S3", small_mp4, media_url=media_url)
    data = small_mp4.read_bytes()
    server = make_server("127.0.0.1", 0, media_store=MediaStoreResource(url=media_url))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        s3 = Preview(server)
        part = s3.get(f"/media/{key}/video.mp4", Range="bytes=1000-2999")
        assert part.status == 206 and part.body == data[1000:3000]
        assert part.headers["Content-Range"] == f"bytes 1000-2999/{len(data)}"
        assert part.headers["ETag"]
        whole = s3.get(f"/media/{key}/video.mp4")
        assert whole.status == 200 and whole.body == data
        assert s3.get(f"/media/{key}/subtitles.srt").status == 404
        # Nothing on the local disk: the bytes came from the bucket.
        assert not (shorts_home / "media" / "projects").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_media_route_serves_nothing_outside_the_project(
    preview: Preview, small_mp4: Path, shorts_home: Path
):
    key = rendered_project("Traversal", small_mp4)
    other = rendered_project("Another project, not rendered", None)
    store = MediaStoreResource()
    store.put_bytes(b"a slide", f"projects/{key}/slides/title.png")
    (shorts_home / "secret.txt").write_text("top secret")
    attempts = [
        "/media/../catalog.db",
        "/media/../../secret.txt",
        f"/media/{key}/../../../secret.txt",
        f"/media/{key}/..%2F..%2F..%2Fsecret.txt",
        f"/media/{key}/%2e%2e%2f%2e%2e%2fsecret.txt",
        f"/media/{key}/slides/title.png",
        f"/media/{key}/slides%2Ftitle.png",
        f"/media/{key}/video.mp4%00.txt",
        f"/media/{key}/VIDEO.MP4",
        f"/media/{key.upper()}/video.mp4",
        f"/media/{key}%2F..%2F{other}/video.mp4",
        f"/media/%2e%2e/{key}/video.mp4",
        "/media/%2e%2e%2f%2e%2e/secret.txt",
        "/media/a/b/c/d",
        f"/media/{other}/video.mp4",  # a real project with no video yet
        "/media/no-such-project-1234/video.mp4",  # a well-formed key not in the catalog
        "/media//etc/passwd",
        f"/media/{key}//etc/passwd",
    ]
    for path in attempts:
        reply = preview.get(path)
        assert reply.status == 404, path
        assert b"top secret" not in reply.body and b"a slide" not in reply.body, path
        assert b"SQLite format" not in reply.body, path


# ---- decisions ----------------------------------------------------------------------------


def test_approve_form_records_the_decision_through_review(preview: Preview, small_mp4: Path):
    key = rendered_project("Approve me", small_mp4)
    token = preview.token(key)
    reply = preview.post_form(f"/projects/{key}/approve", {"token": token, "by": "Ana <3"})
    assert reply.status == 303
    assert reply.headers["Location"] == f"/projects/{key}?decision=approved"
    review = CatalogResource().review(key)
    assert (review.state, review.by, review.reason) == ("approved", "Ana <3", None)
    page = preview.get(reply.headers["Location"]).text
    assert "Approved by Ana &lt;3." in page


def test_reject_without_a_reason_shows_the_review_error_and_records_nothing(
    preview: Preview, small_mp4: Path
):
    key = rendered_project("Reject me", small_mp4)
    token = preview.token(key)
    reply = preview.post_form(
        f"/projects/{key}/reject", {"token": token, "by": "<b>bo</b>", "reason": "  "}
    )
    assert reply.status == 422
    assert "Not rejected: a rejection needs a reason" in reply.text
    assert 'value="&lt;b&gt;bo&lt;/b&gt;"' in reply.text  # what was typed stays, escaped
    assert CatalogResource().review(key).state == "pending"

    reply = preview.post_form(
        f"/projects/{key}/reject", {"token": token, "reason": "music too loud <here>"}
    )
    assert reply.status == 303
    review = CatalogResource().review(key)
    assert (review.state, review.reason) == ("rejected", "music too loud <here>")
    page = preview.get(f"/projects/{key}?decision=rejected").text
    assert "Reason: music too loud &lt;here&gt;" in page


def test_decisions_the_cli_would_refuse_are_refused_with_its_message(
    preview: Preview, small_mp4: Path
):
    no_review = rendered_project("Published without review", small_mp4, review=False)
    token = preview.server.form_token
    reply = preview.post_form(f"/projects/{no_review}/approve", {"token": token})
    assert reply.status == 422
    assert f"{no_review} was not added with --review: it needs no approval" in reply.text
    not_rendered = CatalogResource().add_project("Not rendered yet", review=True).key
    reply = preview.post_form(f"/projects/{not_rendered}/approve", {"token": token})
    assert reply.status == 422 and "has no rendered video to review" in reply.text
    assert CatalogResource().review(not_rendered).state is None


def test_forged_and_cross_site_requests_are_refused(preview: Preview, small_mp4: Path):
    key = rendered_project("Forge me", small_mp4)
    token = preview.token(key)
    path = f"/projects/{key}/approve"
    forged = [
        preview.post_form(path, {}),  # no token
        preview.post_form(path, {"token": "guessed"}),
        preview.post_form(path, {"token": token}, Origin="http://evil.example"),
        preview.post_form(path, {"token": token}, Origin="null"),
        preview.post_form(path, {"token": token}, Sec_Fetch_Site="cross-site"),
        preview.post_form(path, {"token": token}, Origin=f"http://localhost:{preview.port}"),
    ]
    assert [r.status for r in forged] == [403] * len(forged)
    assert "reload the page" in forged[1].text
    assert "sent from another site (http://evil.example)" in forged[2].text
    json_body = preview.request(
        "POST", path, {"Content-Type": "application/json"}, b'{"token": "%s"}' % token.encode()
    )
    assert json_body.status == 400
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 names itself in Host.
    for host in ("evil.example", f"evil.example:{preview.port}", "127.0.0.1:1", ""):
        rebound = preview.request("GET", f"/projects/{key}", {"Host": host})
        assert rebound.status == 400, host
        assert "token" not in rebound.text
        posted = preview.request(
            "POST",
            path,
            {"Host": host, "Content-Type": "application/x-www-form-urlencoded"},
            f"token={token}".encode(),
        )
        assert posted.status == 400, host
    assert CatalogResource().review(key).state == "pending"
    # The same request from the page itself (Origin or not, localhost or not) is accepted.
    ok = preview.request(
        "POST",
        path,
        {
            "Host": f"localhost:{preview.port}",
            "Origin": f"http://localhost:{preview.port}",
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        f"token={token}&by=me".encode(),
    )
    assert ok.status == 303
    assert CatalogResource().review(key).state == "approved"


def test_a_new_server_refuses_the_forms_of_the_last_one(preview: Preview, small_mp4: Path):
    key = rendered_project("Restarted", small_mp4)
    earlier = make_server("127.0.0.1", 0)
    earlier.server_close()
    assert len(earlier.form_token) >= 40 and earlier.form_token != preview.server.form_token
    reply = preview.post_form(f"/projects/{key}/approve", {"token": earlier.form_token})
    assert reply.status == 403 and "reload the page" in reply.text
    assert CatalogResource().review(key).state == "pending"


# ---- the command's entry point ------------------------------------------------------------


def test_run_server_prints_its_url_serves_and_stops_on_ctrl_c(shorts_home: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_"))}
    env["SHORTS_HOME"] = str(shorts_home)
    CatalogResource().add_project("Served by the command")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # A child started from a script inherits SIGINT ignored: Ctrl-C must still stop it.
            "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from shorts_pipeline.serve import run_server; "
            "run_server('127.0.0.1', int(sys.argv[1]), False)",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, proc.stderr.read() if proc.stderr else ""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and "Served by the command" in resp.read().decode()
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_taken_port_is_one_clear_error(shorts_home: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError, match=rf"cannot listen on 127.0.0.1:{port}: .*--port"):
            make_server("127.0.0.1", port)


def test_bound_to_every_interface_it_answers_ip_hosts_but_not_domain_names(shorts_home: Path):
    server = make_server("0.0.0.0", 0)
    try:
        port = server.port
        assert server.url == f"http://127.0.0.1:{port}/"
        hosts = server.hosts
        assert hosts.allows(f"127.0.0.1:{port}") and hosts.allows(f"192.168.1.20:{port}")
        assert hosts.allows(f"[::1]:{port}") and hosts.allows(f"localhost:{port}")
        assert not hosts.allows(f"evil.example:{port}")
        assert not hosts.allows("192.168.1.20:1")
    finally:
        server.server_close()
    loopback = make_server("127.0.0.1", 0)
    try:
        assert not loopback.hosts.allows(f"192.168.1.20:{loopback.port}")
    finally:
        loopback.server_close()
