"""Completion webhooks: delivery against a real local HTTP server, and the run-status sensors
evaluated on real runs of a small partitioned asset graph."""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from shorts_pipeline.sensors.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    post_event,
    run_failed_webhook,
    run_succeeded_webhook,
    webhook_sensors,
)
from tests.helpers import free_port

SECRET = "whsec-never-printed"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint answering with scripted status codes (then 200), recording posts."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.received.append(Received(self.path, dict(self.headers.items()), body))
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/secret-token"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHORTS_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("SHORTS_WEBHOOK_SECRET", raising=False)


# ---- post_event ---------------------------------------------------------------------------


def test_post_event_delivers_json_once(receiver: WebhookReceiver) -> None:
    payload = {"event": "run.succeeded", "run_id": "r1", "title": "핫한 영상 🔥 & <b>"}
    result = post_event(receiver.url, payload, backoff=0.01)
    assert result.delivered and result.attempts == 1 and result.status_code == 200
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.path == "/hooks/secret-token"
    assert got.json() == payload
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers[DELIVERY_HEADER] == "r1:run.succeeded"
    assert SIGNATURE_HEADER not in got.headers


def test_post_event_retries_5xx_with_backoff(receiver: WebhookReceiver) -> None:
    receiver.statuses = [500, 503]
    started = time.monotonic()
    result = post_event(receiver.url, {"event": "run.failed"}, attempts=3, backoff=0.05)
    elapsed = time.monotonic() - started
    assert result.delivered and result.attempts == 3 and result.status_code == 200
    assert len(receiver.received) == 3
    # Waited 0.05 s, then 0.1 s: exponential, not immediate.
    assert elapsed >= 0.15
    # Every attempt is the same delivery, so the receiver can de-duplicate.
    assert len({r.headers[DELIVERY_HEADER] for r in receiver.received}) == 1


def test_post_event_gives_up_after_the_last_attempt(receiver: WebhookReceiver) -> None:
    receiver.statuses = [502, 502, 502, 502]
    result = post_event(receiver.url, {"event": "run.failed"}, attempts=3, backoff=0.01)
    assert not result.delivered and result.attempts == 3 and result.status_code == 502
    assert len(receiver.received) == 3


def test_post_event_does_not_retry_4xx(receiver: WebhookReceiver) -> None:
    receiver.statuses = [400]
    result = post_event(receiver.url, {"event": "run.failed"}, attempts=3, backoff=0.01)
    assert not result.delivered and result.attempts == 1 and result.status_code == 400
    assert "400" in (result.error or "")
    assert len(receiver.received) == 1


def test_post_event_to_a_server_that_is_down_returns_a_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/secret-token"
    result = post_event(url, {"event": "run.succeeded"}, attempts=2, backoff=0.01)
    assert not result.delivered and result.attempts == 2 and result.status_code is None
    assert result.error and "refused" in result.error.lower()
    # The path may hold the receiver's token: it is not repeated in messages.
    assert "secret-token" not in result.error


def test_post_event_signature_verifies_with_the_secret(receiver: WebhookReceiver) -> None:
    result = post_event(receiver.url, {"event": "run.succeeded", "n": 1}, secret=SECRET)
    assert result.delivered
    got = receiver.received[0]
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    scheme, _, digest = got.headers[SIGNATURE_HEADER].partition("=")
    assert scheme == "sha256"
    assert hmac.compare_digest(digest, expected)
    wrong = hmac.new(b"another secret", got.body, hashlib.sha256).hexdigest()
    assert digest != wrong
    assert SECRET not in got.body.decode() and SECRET not in json.dumps(got.headers)


# ---- the sensors, on real runs ------------------------------------------------------------

projects = dg.DynamicPartitionsDefinition(name="project")


@dg.asset(partitions_def=projects)
def video() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"size_bytes": 1234})


@dg.asset(partitions_def=projects, deps=[video])
def upload(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    url = f"https://cdn.example.test/{context.partition_key}/video.mp4"
    return dg.MaterializeResult(metadata={"url": dg.MetadataValue.url(url)})


@dg.asset(partitions_def=projects, name="video")
def broken_video() -> None:
    raise RuntimeError("ffmpeg failed on clip <#3> & gave up")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("project", ["football-skills", "고양이-피아노"])
        yield inst


def _success_context(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult
) -> dg.RunStatusSensorContext:
    return dg.build_run_status_sensor_context(
        sensor_name="run_succeeded_webhook",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )


def _failure_context(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult
) -> dg.RunStatusSensorContext:
    return dg.build_run_status_sensor_context(
        sensor_name="run_failed_webhook",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    )


def test_success_sensor_posts_project_stages_and_video_url(
    instance: dg.DagsterInstance,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHORTS_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("SHORTS_WEBHOOK_SECRET", SECRET)
    result = dg.materialize([video, upload], instance=instance, partition_key="고양이-피아노")
    assert result.success

    outcome = run_succeeded_webhook(_success_context(instance, result))

    assert outcome is None
    assert len(receiver.received) == 1
    got = receiver.received[0]
    event = got.json()
    assert event["event"] == "run.succeeded"
    assert event["run_id"] == result.run_id
    assert event["job"] == result.dagster_run.job_name
    assert event["project_key"] == "고양이-피아노"
    assert event["stage"] == ["upload", "video"]
    assert event["status"] == "SUCCESS"
    assert event["video_url"] == "https://cdn.example.test/고양이-피아노/video.mp4"
    assert event["error"] is None
    assert event["timestamp"].endswith("+00:00")
    digest = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers[SIGNATURE_HEADER] == f"sha256={digest}"


def test_success_sensor_without_upload_has_no_video_url(
    instance: dg.DagsterInstance,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHORTS_WEBHOOK_URL", receiver.url)
    result = dg.materialize([video], instance=instance, partition_key="football-skills")

    run_succeeded_webhook(_success_context(instance, result))

    event = receiver.received[0].json()
    assert event["stage"] == ["video"]
    assert event["video_url"] is None
    assert SIGNATURE_HEADER not in receiver.received[0].headers


def test_failure_sensor_posts_the_failed_step_and_its_error(
    instance: dg.DagsterInstance,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHORTS_WEBHOOK_URL", receiver.url)
    result = dg.materialize(
        [broken_video], instance=instance, partition_key="football-skills", raise_on_error=False
    )
    assert not result.success

    outcome = run_failed_webhook(_failure_context(instance, result))

    assert outcome is None
    event = receiver.received[0].json()
    assert event["event"] == "run.failed"
    assert event["project_key"] == "football-skills"
    assert event["stage"] == ["video"]
    assert event["status"] == "FAILURE"
    assert event["video_url"] is None
    # The user's exception, not Dagster's wrapper around it.
    assert event["error"] == "video: RuntimeError: ffmpeg failed on clip <#3> & gave up"


def test_sensors_skip_when_no_webhook_is_configured(
    instance: dg.DagsterInstance, receiver: WebhookReceiver
) -> None:
    ok = dg.materialize([video], instance=instance, partition_key="football-skills")
    bad = dg.materialize(
        [broken_video], instance=instance, partition_key="football-skills", raise_on_error=False
    )

    skipped_ok = run_succeeded_webhook(_success_context(instance, ok))
    skipped_bad = run_failed_webhook(_failure_context(instance, bad))

    for skipped in (skipped_ok, skipped_bad):
        assert isinstance(skipped, dg.SkipReason)
        assert "SHORTS_WEBHOOK_URL" in (skipped.skip_message or "")
    assert receiver.received == []


def test_webhook_that_is_down_never_raises_out_of_the_sensor(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORTS_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/down")
    monkeypatch.setattr("shorts_pipeline.sensors.webhook.time.sleep", lambda _: None)
    result = dg.materialize([video], instance=instance, partition_key="football-skills")

    outcome = run_succeeded_webhook(_success_context(instance, result))

    assert isinstance(outcome, dg.SkipReason)
    assert "not delivered after 3 attempt(s)" in (outcome.skip_message or "")


def test_failure_sensor_ticks_pick_up_a_cli_style_run(
    instance: dg.DagsterInstance,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The daemon's path: a first tick sets the cursor, the next one sees the failed run even
    though it was executed in-process (no code-location origin), and the cursor moves past it."""
    monkeypatch.setenv("SHORTS_WEBHOOK_URL", receiver.url)
    first = run_failed_webhook.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert first.cursor

    dg.materialize(
        [broken_video], instance=instance, partition_key="football-skills", raise_on_error=False
    )
    second = run_failed_webhook.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=first.cursor)
    )
    assert [r.json()["event"] for r in receiver.received] == ["run.failed"]
    assert second.cursor and second.cursor != first.cursor

    third = run_failed_webhook.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=second.cursor)
    )
    assert third.cursor == second.cursor
    assert len(receiver.received) == 1


def test_webhook_sensors_load_in_definitions_and_start_running() -> None:
    defs = dg.Definitions(assets=[video, upload], sensors=webhook_sensors)
    dg.Definitions.validate_loadable(defs)
    for sensor in webhook_sensors:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert defs.resolve_sensor_def(sensor.name) is sensor
    assert {s.name for s in webhook_sensors} == {"run_succeeded_webhook", "run_failed_webhook"}


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "not a url", "http://", "http://exa mple.test/x"]
)
def test_post_event_with_a_bad_url_fails_without_raising(url: str) -> None:
    result = post_event(url, {"event": "run.succeeded"}, attempts=2, backoff=0.01)
    assert not result.delivered and result.error
