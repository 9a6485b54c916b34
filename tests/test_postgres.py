"""The production storage: a PostgreSQL server (the Debian package, started here on loopback)
holding both the Dagster instance (dagster-postgres) and the project catalog, with several
projects rendered by concurrent runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from shorts_pipeline.models import ProjectStatus
from shorts_pipeline.render.inspect import inspect_video
from shorts_pipeline.resources.catalog import CatalogResource
from tests.helpers import fast_settings
from tests.pg_server import postgres_server

pytestmark = pytest.mark.slow

SHORTS = [sys.executable, "-m", "shorts_pipeline.cli"]
POOLS = {"ffmpeg": 2, "network": 4}
DEPLOY_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory):
    with postgres_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


def test_the_catalog_keeps_every_write_of_concurrent_writers_on_postgres(pg, shorts_home):
    pg.create_database("catalog_writers")
    catalog = CatalogResource(url=pg.url("catalog_writers"))
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            spec = catalog.add_project(f"Writer {n} goals", keywords=["football"], review=True)
            catalog.set_status(spec.key, ProjectStatus.rendered)
            catalog.set_review(spec.key, "approved", by=f"editor-{n}", reason=None)
        except BaseException as err:  # collected and re-raised in the test thread
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    projects = catalog.list_projects()
    assert len(projects) == 12
    for spec in projects:
        assert spec.status == ProjectStatus.rendered
        review = catalog.review(spec.key)
        assert review.state == "approved" and review.by and review.by.startswith("editor-")
        assert review.at is not None and review.at.tzinfo is not None
    # The engine really is PostgreSQL, not a fallback.
    assert catalog.engine.dialect.name == "postgresql"


def test_projects_render_concurrently_on_a_postgres_instance_and_catalog(
    pg, shorts_home: Path, clip_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    pg.create_database("dagster")
    pg.create_database("shorts")
    # The production instance config of deploy/, as documented, with its variables set.
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copy(DEPLOY_INSTANCE, dagster_home / "dagster.yaml")
    for name, value in {
        "DAGSTER_PG_HOST": pg.host,
        "DAGSTER_PG_PORT": str(pg.port),
        "DAGSTER_PG_USER": pg.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": "dagster",
    }.items():
        monkeypatch.setenv(name, value)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "SHORTS_CATALOG_URL": pg.url("shorts"),
    }
    catalog = CatalogResource(url=pg.url("shorts"))
    settings = fast_settings(library=str(clip_library), count=2)
    keys = [
        catalog.add_project(title, keywords=["football"], settings=settings).key
        for title in ("Postgres one", "Postgres two", "Postgres three")
    ]

    # Pools set up front, as deploy/README.md says (`dagster instance concurrency set`): left to
    # their default, concurrent runs race to create the pool rows, and on PostgreSQL the loser's
    # transaction aborts and fails its run (dagster 1.13.27, sql_event_log
    # initialize_concurrency_limit_to_default).
    setup = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        for pool, limit in POOLS.items():
            setup.event_log_storage.set_concurrency_slots(pool, limit)
    finally:
        setup.dispose()

    procs = [
        subprocess.Popen(
            [*SHORTS, "run", key, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key in keys
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out[-3000:], err[-2000:])
    payloads = [json.loads(out) for out, _ in outputs]

    # The instance on PostgreSQL holds the three runs, each for its own partition.
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        runs = instance.get_runs()
        by_key = {r.tags.get("dagster/partition"): r for r in runs}
        assert set(by_key) == set(keys)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        # The runs overlapped: each started before another ended.
        stats = {key: instance.get_run_stats(r.run_id) for key, r in by_key.items()}
        starts = sorted(s.start_time for s in stats.values() if s.start_time)
        ends = sorted(s.end_time for s in stats.values() if s.end_time)
        assert len(starts) == 3 and starts[1] < ends[0]
        storage = instance.event_log_storage
        assert {p: storage.get_concurrency_info(p).slot_count for p in POOLS} == POOLS
        for key in keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("video"), asset_partitions=[key]),
                limit=5,
            ).records
            assert len(records) == 1, key
    finally:
        instance.dispose()

    # The catalog on PostgreSQL has every project uploaded, and the videos are real.
    for key, payload in zip(keys, payloads, strict=True):
        assert catalog.get_project(key).status == ProjectStatus.uploaded
        facts = inspect_video(payload["video_path"])
        assert (facts.width, facts.height) == (1080, 1920)
        assert facts.duration > 3
