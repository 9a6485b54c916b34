"""deploy/ is checked here, since no container runtime runs on these machines. Every instance
config is validated against Dagster's own schema, and each run launcher's config against its
launcher class. The compose file must name files that exist and set every variable a run
container is given. A broken config must fail the same validation."""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
INSTANCE_CONFIGS = ["dagster.yaml", "docker/dagster.yaml", "k8s/dagster.yaml"]
LAUNCHERS = {
    "docker/dagster.yaml": ("dagster_docker", "DockerRunLauncher"),
    "k8s/dagster.yaml": ("dagster_k8s", "K8sRunLauncher"),
}


def validated(path: Path, tmp_path: Path) -> dict[str, Any]:
    """The instance config at `path`, validated as Dagster validates dagster.yaml at start-up,
    with its run launcher's config validated against that launcher's own schema."""
    home = tmp_path / path.parent.name
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, home / "dagster.yaml")
    config, _ = dagster_instance_config(str(home))
    launcher = config.get("run_launcher")
    if launcher:
        cls = getattr(importlib.import_module(launcher["module"]), launcher["class"])
        result = validate_config(cls.config_type(), launcher.get("config") or {})
        if not result.success:
            raise DagsterInvalidConfigError(
                f"{launcher['class']} config", result.errors, launcher["config"]
            )
    return dict(config)


@pytest.mark.parametrize("name", INSTANCE_CONFIGS)
def test_every_instance_config_is_valid_dagster_config(name: str, tmp_path: Path):
    config = validated(DEPLOY / name, tmp_path)
    postgres = config["storage"]["postgres"]["postgres_db"]
    # Credentials come from the environment, never from the file.
    assert postgres["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert postgres["scheme"] == "postgresql+psycopg2"
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] >= 2
    partition_limit = [t for t in runs["tag_concurrency_limits"] if t["key"] == "dagster/partition"]
    assert partition_limit == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert config["concurrency"]["pools"]["granularity"] == "op"
    if name in LAUNCHERS:
        module, cls = LAUNCHERS[name]
        assert (config["run_launcher"]["module"], config["run_launcher"]["class"]) == (module, cls)


@pytest.mark.parametrize(
    ("name", "break_it", "complaint"),
    [
        ("dagster.yaml", lambda c: c["concurrency"]["runs"].update(max_runs=3), "max_runs"),
        (
            "docker/dagster.yaml",
            lambda c: c["run_launcher"]["config"].update(env_vars="FAL_KEY"),
            "env_vars",
        ),
        (
            "k8s/dagster.yaml",
            lambda c: c["run_launcher"]["config"].update(job_namespaces="shorts"),
            "job_namespaces",
        ),
        (
            "k8s/dagster.yaml",
            lambda c: c["storage"]["postgres"]["postgres_db"].update(port="five"),
            "port",
        ),
    ],
)
def test_a_broken_config_fails_the_same_validation(name, break_it, complaint, tmp_path: Path):
    config = yaml.safe_load((DEPLOY / name).read_text())
    break_it(config)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    with pytest.raises(DagsterInvalidConfigError) as err:
        validated(broken, tmp_path / "home")
    assert complaint in str(err.value) or any(complaint in str(e) for e in err.value.errors)


def test_compose_runs_webserver_daemon_and_code_location_on_postgres():
    compose = yaml.safe_load((DEPLOY / "docker" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "shorts_code", "webserver", "daemon"} <= set(services)
    # Every file the services mount exists in deploy/docker.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / "docker" / source).exists(), source
    workspace = yaml.safe_load((DEPLOY / "docker" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["host"] == "shorts_code" and grpc["port"] == 4000
    # The launcher's network is the one the services share.
    launcher = yaml.safe_load((DEPLOY / "docker" / "dagster.yaml").read_text())["run_launcher"]
    assert launcher["config"]["network"] in compose["networks"]
    # Every variable a run container is given is set on the services, and in example.env.
    env = services["daemon"]["environment"]
    example = (DEPLOY / "docker" / "example.env").read_text()
    example_keys = set(re.findall(r"^([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    for name in launcher["config"]["env_vars"]:
        assert name in env, name
    for reference in re.findall(
        r"\$\{([A-Z0-9_]+)", (DEPLOY / "docker" / "docker-compose.yaml").read_text()
    ):
        assert reference in example_keys, reference
    assert "change-me" in example  # no real secret is committed


def test_the_image_builds_the_locked_environment_with_the_launchers():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev --group deploy" in dockerfile
    for package in ("ffmpeg", "espeak-ng", "fonts-nanum", "fonts-noto-color-emoji"):
        assert package in dockerfile
    assert "shorts_pipeline.definitions" in dockerfile
