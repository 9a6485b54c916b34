"""Completion webhooks: tell an outside system when a run succeeds or fails.

Two run-status sensors, `run_succeeded_webhook` and `run_failed_webhook`, POST one JSON event
per finished run to the URL in SHORTS_WEBHOOK_URL (read at every evaluation, so it can be set
or changed without reloading the code location). They are RUNNING by default and skip with a
reason when no URL is set, so turning webhooks on is one environment variable.

The event:

    {"event": "run.succeeded" | "run.failed", "run_id", "job", "project_key", "stage",
     "status", "video_url", "error", "timestamp"}

`project_key` is the run's partition; `stage` the assets the run materialised (or the steps
that failed); `video_url` the `url` metadata of the run's `publication` or `upload`
materialisation; `error` what went wrong, for failures. When SHORTS_WEBHOOK_SECRET is set the
request carries `X-Shorts-Signature: sha256=<hex HMAC-SHA256 of the body>`; receivers should
compare it in constant time. `X-Shorts-Delivery` is the same for every attempt at one event, so
a receiver can drop duplicates.

Delivery retries network errors, 429 and 5xx with exponential back-off; other 4xx answers are
final. A webhook that is down never fails the sensor or the run: the sensor logs a warning and
moves on, so publishing is never blocked by a notification.

Both sensors monitor every run on the instance (`monitor_all_code_locations=True`): runs that
the `shorts` CLI executes in-process have no code-location origin, and would otherwise be
invisible to a sensor of this code location.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import dagster as dg

WEBHOOK_URL_ENV = "SHORTS_WEBHOOK_URL"
WEBHOOK_SECRET_ENV = "SHORTS_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Shorts-Signature"
DELIVERY_HEADER = "X-Shorts-Delivery"
EVENT_HEADER = "X-Shorts-Event"

# Where a run's public video link is found, best first.
VIDEO_URL_ASSETS = ("publication", "upload")
PARTITION_TAG = "dagster/partition"
MAX_ERROR_CHARS = 4000

# A sensor evaluation has about a minute; three attempts at 5 s plus back-off stay well inside.
SENSOR_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class DeliveryResult:
    """How one webhook delivery went: delivered or not, after how many attempts, and why."""

    delivered: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="run_succeeded_webhook",
    minimum_interval_seconds=15,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="POSTs a run.succeeded event (project, stages, video URL) to "
    "SHORTS_WEBHOOK_URL; skips when it is not set. Signed with SHORTS_WEBHOOK_SECRET if set.",
)
def run_succeeded_webhook(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
    return _notify(context, "run.succeeded", error_of=lambda: None)


@dg.run_failure_sensor(
    name="run_failed_webhook",
    minimum_interval_seconds=15,
    monitor_all_code_locations=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="POSTs a run.failed event (project, failed steps, error) to "
    "SHORTS_WEBHOOK_URL; skips when it is not set. Signed with SHORTS_WEBHOOK_SECRET if set.",
)
def run_failed_webhook(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
    return _notify(context, "run.failed", error_of=lambda: _failure_message(context))


webhook_sensors = [run_succeeded_webhook, run_failed_webhook]


def post_event(
    url: str,
    payload: Mapping[str, Any],
    *,
    secret: str | None = None,
    attempts: int = 3,
    backoff: float = 0.5,
    timeout: float = 10.0,
) -> DeliveryResult:
    """POST `payload` as JSON to `url`; never raises for network or HTTP errors.

    Network errors, 429 and 5xx answers are retried up to `attempts` times in all, waiting
    `backoff`, 2×`backoff`, 4×`backoff`… between tries; any other 4xx is final. With `secret`,
    the body is signed (HMAC-SHA256) in the X-Shorts-Signature header.
    """
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "shorts-pipeline-webhook/1",
        EVENT_HEADER: str(payload.get("event", "")),
        DELIVERY_HEADER: _delivery_id(payload),
    }
    if secret:
        headers[SIGNATURE_HEADER] = "sha256=" + sign(body, secret)
    where = _redacted(url)
    if urlsplit(url).scheme not in ("http", "https"):
        # A configuration mistake (file://, a bare host…): no retry will fix it.
        return DeliveryResult(False, 0, None, f"webhook URL must be http(s), got {where}")
    tries = max(1, attempts)
    last_error = "not attempted"
    status: int | None = None
    for attempt in range(1, tries + 1):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as err:
            status = err.code
            err.close()
        except (OSError, http.client.HTTPException, ValueError) as err:
            # Refused, reset, timed out, DNS; ValueError: a URL http.client cannot send.
            status = None
            reason = getattr(err, "reason", err)
            last_error = f"{type(err).__name__} calling {where}: {reason}"
        if status is not None:
            if 200 <= status < 300:
                return DeliveryResult(delivered=True, attempts=attempt, status_code=status)
            last_error = f"{where} answered HTTP {status}"
            if not _retryable(status):
                return DeliveryResult(False, attempt, status, last_error + " (not retried)")
        if attempt < tries:
            time.sleep(backoff * 2 ** (attempt - 1))
    return DeliveryResult(delivered=False, attempts=tries, status_code=status, error=last_error)


def sign(body: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 of `body` under `secret`: what X-Shorts-Signature carries."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build_run_event(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    event: str,
    *,
    error: str | None = None,
) -> dict[str, Any]:
    """The JSON event for one finished run, read from the run and its event log."""
    materialized = _materializations(instance, run.run_id)
    if event == "run.failed":
        stage = _failed_steps(instance, run.run_id)
    elif run.asset_selection:
        stage = sorted(key.to_user_string() for key in run.asset_selection)
    else:
        stage = sorted(materialized)
    return {
        "event": event,
        "run_id": run.run_id,
        "job": run.job_name,
        "project_key": run.tags.get(PARTITION_TAG),
        "stage": stage,
        "status": run.status.value,
        "video_url": _video_url(materialized),
        "error": error,
        "timestamp": _finished_at(instance, run.run_id),
    }


# ---- helpers ----------------------------------------------------------------------------


def _notify(
    context: dg.RunStatusSensorContext, event: str, *, error_of: Callable[[], str | None]
) -> dg.SkipReason | None:
    url = (os.environ.get(WEBHOOK_URL_ENV) or "").strip()
    if not url:
        return dg.SkipReason(f"{WEBHOOK_URL_ENV} is not set: no webhook to call")
    run = context.dagster_run
    error = error_of()
    try:
        payload = build_run_event(context.instance, run, event, error=error)
    except Exception as err:  # a broken event log must not stop the notification
        context.log.warning(f"webhook: could not read run {run.run_id}'s events: {err}")
        payload = {
            "event": event,
            "run_id": run.run_id,
            "job": run.job_name,
            "project_key": run.tags.get(PARTITION_TAG),
            "stage": [],
            "status": run.status.value,
            "video_url": None,
            "error": error,
            "timestamp": datetime.now(UTC).isoformat(),
        }
    secret = os.environ.get(WEBHOOK_SECRET_ENV) or None
    result = post_event(url, payload, secret=secret, timeout=SENSOR_TIMEOUT_SECONDS)
    if result.delivered:
        context.log.info(
            f"webhook: {event} for run {run.run_id} delivered to {_redacted(url)} "
            f"(HTTP {result.status_code}, attempt {result.attempts})"
        )
        return None
    message = (
        f"webhook: {event} for run {run.run_id} not delivered after "
        f"{result.attempts} attempt(s): {result.error}"
    )
    context.log.warning(message)
    # A skip (not an error) so the tick shows why, and the run itself is left alone.
    return dg.SkipReason(message)


def _failure_message(context: dg.RunFailureSensorContext) -> str:
    """The step errors (the user's exception, not Dagster's wrapper), or the run's message."""
    lines = []
    try:
        for step_event in context.get_step_failure_events():
            data = step_event.event_specific_data
            err = getattr(data, "error", None)
            if err is None:
                continue
            while err.cause is not None and err.cls_name in (
                "DagsterExecutionStepExecutionError",
                "DagsterUserCodeExecutionError",
            ):
                err = err.cause
            lines.append(f"{step_event.step_key}: {err.message.strip()}")
    except Exception as err:  # the event log is best effort here
        context.log.warning(f"webhook: could not read step failures: {err}")
    text = "\n".join(lines) or (context.failure_event.message or "run failed")
    return text[:MAX_ERROR_CHARS]


def _materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """Asset key → its metadata values, for every materialisation in the run."""
    found: dict[str, dict[str, Any]] = {}
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None:
            continue
        found[materialization.asset_key.to_user_string()] = {
            name: value.value for name, value in materialization.metadata.items()
        }
    return found


def _failed_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    keys = {r.event_log_entry.step_key for r in records if r.event_log_entry.step_key}
    return sorted(keys)


def _video_url(materialized: Mapping[str, Mapping[str, Any]]) -> str | None:
    for asset in VIDEO_URL_ASSETS:
        url = materialized.get(asset, {}).get("url")
        if isinstance(url, str) and url:
            return url
    return None


def _finished_at(instance: dg.DagsterInstance, run_id: str) -> str:
    record = instance.get_run_record_by_id(run_id)
    end = record.end_time if record else None
    moment = datetime.fromtimestamp(end, UTC) if end else datetime.now(UTC)
    return moment.isoformat()


def _delivery_id(payload: Mapping[str, Any]) -> str:
    return f"{payload.get('run_id', '')}:{payload.get('event', '')}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would turn into a GET without the body: report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _redacted(url: str) -> str:
    """The URL without path, query or credentials: chat webhooks carry their token in the path."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}/…"
