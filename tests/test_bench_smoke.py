"""The benchmark commands in their smoke mode (tiny inputs, every section once): they must
keep working, so the suite runs them. Times are printed by the benchmarks, never asserted.

They run here, as two of the long tests that start first, rather than before the suite:
their waiting (process start-up, one-core stretches) overlaps with the other tests' work.
The MoviePy comparison needs the `bench` dependency group: `make test` runs pytest with it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """A benchmark script from the repository, in its own SHORTS_HOME; it must succeed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHORTS_"))}
    env["SHORTS_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


@pytest.mark.long
@pytest.mark.slow
def test_the_benchmark_command_runs_every_section_in_smoke_mode(tmp_path: Path) -> None:
    if importlib.util.find_spec("moviepy") is None:
        pytest.fail("MoviePy is missing: run the suite with `uv run --group bench pytest`")
    out = tmp_path / "bench.json"
    proc = _run(
        tmp_path,
        *("bench/run.py", "--smoke", "--sizes", "1", "--json", str(out)),
        *("--cache", str(tmp_path / "cache")),
        timeout=900,
    )
    report = json.loads(out.read_text())
    assert report["mode"] == "smoke"
    assert {"ranking", "explainer", "project", "batches", "memory"} <= set(report["sections"])
    assert report["table"] and set(report["targets"])
    # The table is printed whole: every measure with a value.
    for line in ("ranking render", "one project", "batches", "memory"):
        assert line in proc.stdout, line


@pytest.mark.long
@pytest.mark.slow
def test_the_extend_seams_benchmark_runs_in_smoke_mode(tmp_path: Path) -> None:
    out = tmp_path / "extend_seams.json"
    _run(tmp_path, "bench/extend_seams.py", "--smoke", "--out", str(out), timeout=600)
    results = json.loads(out.read_text())
    assert results["segments"] == 3
    # Ours removes the drift the naive chain builds up (the benchmark's own claim, in smoke).
    assert max(results["ours"]["drift_de2000"]) < max(results["naive"]["drift_de2000"])
