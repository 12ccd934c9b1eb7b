"""A throw-away PostgreSQL cluster for tests: `initdb` in a temporary folder, a free port on 127.0.0.1, a
generated password (in memory only, never in the repository), stopped and deleted at the end.

The server binaries are found in KTRDR_POSTGRES_BIN, on PATH, or under /usr/lib/postgresql/<version>/bin.
PostgreSQL refuses to run as root: as root (CI) the cluster runs as the `postgres` user, else `nobody`.
Without PostgreSQL, `PostgresUnavailable` says why; the fixture then skips the tests with that reason, or
fails them when KTRDR_REQUIRE_POSTGRES=1 (as `.ci/run` sets it), so CI never passes them silently.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "ktrdr"
REQUIRE_ENV = "KTRDR_REQUIRE_POSTGRES"


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL server binaries on this machine."""


@dataclass(frozen=True)
class PostgresCluster:
    host: str
    port: int
    user: str
    password: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        """The libpq variables the postgres profile reads (dagster.yaml and MLflow's store)."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user, "PGPASSWORD": self.password}

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password, dbname=database)

    def create_database(self, name: str) -> None:
        """CREATE DATABASE `name` (dropped first if a previous test left it)."""
        if not name.isidentifier():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        connection = self.connect()
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


def find_bin_dir() -> Path:
    explicit = os.environ.get("KTRDR_POSTGRES_BIN")
    candidates = [Path(explicit)] if explicit else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    candidates += versions
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL 15 or set KTRDR_POSTGRES_BIN"
    )


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: None (this one) unless this is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' account exists")


def _run(command: list[str], account: pwd.struct_passwd | None, **kwargs) -> subprocess.CompletedProcess:
    drop = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, **drop, **kwargs)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """Start a throw-away cluster; yield its address and credentials; stop and delete it."""
    bin_dir = find_bin_dir()
    account = _server_user()
    root = Path(tempfile.mkdtemp(prefix="ktrdr-pg-"))
    started = False
    try:
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        data, password = root / "data", secrets.token_urlsafe(24)
        password_file = root / "password"
        password_file.write_text(password)
        password_file.chmod(0o600)
        if account is not None:
            os.chown(password_file, account.pw_uid, account.pw_gid)
        init = _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(password_file)]
            + ["-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
            account,
            timeout=120,
        )
        password_file.unlink()
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        start = _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60"]
            + ["-o", options, "start"],
            account,
            timeout=90,
        )
        if start.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr.strip()[-500:]} {log[-500:]}")
        started = True
        yield PostgresCluster("127.0.0.1", port, USER, password, data)
    finally:
        if started:
            stop = [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w", "stop"]
            _run(stop, account, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def postgres_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() in ("1", "true", "yes")
