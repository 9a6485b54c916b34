"""A throw-away PostgreSQL server for tests: the Debian package's binaries, a fresh cluster in a
temp folder, listening on loopback only, stopped and deleted afterwards.

`make test` installs the `postgresql` package when it is missing (scripts/bootstrap.sh test).
initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str = "postgres"
    host: str = "127.0.0.1"

    def url(self, database: str, driver: str = "psycopg2") -> str:
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()


def postgres_bin() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb, pg_ctl): `make test` installs the Debian "
        "package `postgresql` (scripts/bootstrap.sh test), or apt-get install postgresql"
    )


@contextmanager
def postgres_server(root: Path) -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster under `root` on a free loopback port; stop it on exit."""
    bindir = postgres_bin()
    data, sockets = root / "pgdata", root / "pgsock"
    sockets.mkdir(parents=True)
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        # The temp folders above `root` must be traversable by the cluster's owner.
        for parent in root.parents:
            if parent == Path("/"):
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
        as_user = ["runuser", "-u", "postgres", "--"]
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        **run,  # type: ignore[call-overload]
    )
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    log = root / "postgres.log"
    started = time.monotonic()
    start = ["-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"]
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), *start],
        **run,  # type: ignore[call-overload]
    )
    try:
        server = PostgresServer(port=port)
        _wait_ready(server, started)
        yield server
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


def _wait_ready(server: PostgresServer, started: float) -> None:
    import psycopg2

    while True:
        try:
            psycopg2.connect(
                host=server.host, port=server.port, user=server.user, dbname="postgres"
            ).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() - started > 60:
                raise
            time.sleep(0.1)
