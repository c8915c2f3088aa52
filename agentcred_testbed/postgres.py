"""A throwaway PostgreSQL cluster on 127.0.0.1 for OpenBao's database secrets engine.

Dynamic database credentials are only worth testing against a real server: the role
OpenBao creates must really log in, and really stop working once the lease is
revoked. This module initialises a fresh cluster in the testbed state folder with
the distribution's binaries (Debian's ``postgresql`` package), password (SCRAM)
authentication everywhere and one superuser with a random password, and runs the
``postgres`` server itself as a child we track by PID (``pg_ctl`` would daemonise it
out of our reach). PostgreSQL refuses to run as root, so when we are root, ``initdb``
and ``postgres`` run as the ``postgres`` OS user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from agentcred_testbed import procs
from agentcred_testbed.procs import StateDir, TestbedError

NAME = "postgres"
NAMES: tuple[str, ...] = (NAME,)
SUPERUSER = "agentcred"
DATABASE = "app"
OS_USER = "postgres"
INSTALL_HINT = "install PostgreSQL first: apt-get install -y postgresql"
# A unix socket path longer than this does not fit in sockaddr_un.sun_path (108 bytes).
_MAX_SOCKET_PATH = 100
# Testbed data is disposable: trade durability for start-up and test speed.
_SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
)


@dataclass(frozen=True)
class _Layout:
    root: Path  # state/data/postgres
    pgdata: Path  # the cluster
    sockets: Path  # unix socket directory

    @classmethod
    def of(cls, state: StateDir) -> _Layout:
        root = state.data(NAME)
        return cls(root=root, pgdata=root / "pgdata", sockets=root / "run")


def find_bindir() -> Path:
    """The folder with ``initdb`` and ``postgres``: ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/<major>/bin``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    versioned = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versioned, key=_major_version, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / b, os.X_OK) for b in ("initdb", "postgres")):
            return bindir
    raise TestbedError(f"no PostgreSQL server binaries (initdb, postgres) found; {INSTALL_HINT}")


def _major_version(bindir: Path) -> int:
    match = re.fullmatch(r"\d+", bindir.parent.name)
    return int(match.group()) if match else -1


def _os_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError as exc:
        raise TestbedError(
            f"running as root, but there is no '{OS_USER}' OS user to run PostgreSQL as; "
            f"{INSTALL_HINT}"
        ) from exc


def _searchable_by(path: Path, account: pwd.struct_passwd) -> bool:
    info = path.stat()
    if info.st_uid == account.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in os.getgrouplist(account.pw_name, account.pw_gid):
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _make_reachable(layout: _Layout, state: StateDir, account: pwd.struct_passwd) -> None:
    """Let ``account`` walk down to our folder: fix folders of the state dir, refuse others."""
    root = state.root.resolve()
    for folder in [layout.root.resolve(), *layout.root.resolve().parents]:
        if _searchable_by(folder, account):
            continue
        if folder == root or root in folder.parents:
            folder.chmod(folder.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)
            continue
        raise TestbedError(
            f"PostgreSQL runs as OS user '{account.pw_name}' (it refuses root) and cannot "
            f"enter {folder}; put the testbed state folder somewhere that user can reach, "
            f"or allow it with: chmod o+x {folder}"
        )


def _prepare(layout: _Layout, state: StateDir, account: pwd.struct_passwd | None) -> None:
    """Empty, owned folders for a fresh cluster and its sockets."""
    for folder in (layout.pgdata, layout.sockets):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700, parents=True)
        if account is not None:
            os.chown(folder, account.pw_uid, account.pw_gid)
    if account is not None:
        _make_reachable(layout, state, account)
    socket_path = layout.sockets / ".s.PGSQL.65535"
    if len(str(socket_path)) > _MAX_SOCKET_PATH:
        raise TestbedError(
            f"unix socket path {socket_path} is too long for the OS; use a shorter state folder"
        )


def _run_as(account: pwd.struct_passwd | None, argv: list[str], cwd: Path) -> None:
    """Run a one-shot PostgreSQL tool (as ``account`` if given); fail with its output."""
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        user=account.pw_uid if account else None,
        group=account.pw_gid if account else None,
        extra_groups=[] if account else None,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise TestbedError(f"{Path(argv[0]).name} failed (exit {result.returncode}):\n{output}")


def _initdb(
    bindir: Path, layout: _Layout, account: pwd.struct_passwd | None, password: str
) -> None:
    """A fresh cluster whose only way in is SCRAM with ``SUPERUSER``'s password."""
    pwfile = layout.root / "initdb.pw"
    pwfile.unlink(missing_ok=True)
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, password.encode() + b"\n")
        if account is not None:
            os.fchown(fd, account.pw_uid, account.pw_gid)
    finally:
        os.close(fd)
    try:
        _run_as(
            account,
            [
                str(bindir / "initdb"),
                f"--pgdata={layout.pgdata}",
                f"--username={SUPERUSER}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=layout.root,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _conninfo(port: int, password: str, dbname: str) -> str:
    return make_conninfo(
        host="127.0.0.1",
        port=port,
        user=SUPERUSER,
        password=password,
        dbname=dbname,
        connect_timeout=2,
        sslmode="disable",
    )


def _accepts_login(port: int, password: str) -> bool:
    if not procs.port_open(port):
        return False
    try:
        with psycopg.connect(_conninfo(port, password, "postgres")) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False  # e.g. "the database system is starting up"
    return True


def _create_database(port: int, password: str) -> None:
    with psycopg.connect(_conninfo(port, password, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')


def up(state: StateDir, env: dict[str, str]) -> dict[str, str]:
    """Start a fresh cluster on a free port; return libpq's ``PG*`` variables for it."""
    del env  # PostgreSQL needs nothing from earlier components
    down(state)
    bindir = find_bindir()
    account = _os_user()
    layout = _Layout.of(state)
    password = secrets.token_urlsafe(24)
    _prepare(layout, state, account)
    _initdb(bindir, layout, account, password)
    port = procs.free_port()
    argv = [str(bindir / "postgres"), "-D", str(layout.pgdata), "-p", str(port)]
    argv += ["-k", str(layout.sockets)]
    for setting in _SERVER_SETTINGS:
        argv += ["-c", setting]
    procs.start(state, NAME, argv, cwd=layout.root, user=account.pw_name if account else None)
    procs.wait_until(
        state, NAME, lambda: _accepts_login(port, password), timeout=60, what="accepting logins"
    )
    _create_database(port, password)
    return {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGUSER": SUPERUSER,
        "PGPASSWORD": password,
        "PGDATABASE": DATABASE,
    }


def down(state: StateDir) -> None:
    """Fast shutdown (SIGINT: disconnect clients, checkpoint, exit), then reap the group.

    Signalling the whole process group with SIGTERM, as ``procs.stop`` does, would hit
    the server's own helper processes before the postmaster can stop them in order.
    """
    pid = procs.pid_of(state, NAME)
    if pid is not None and procs.alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and procs.alive(pid):
            time.sleep(0.1)
    procs.stop(state, NAME)
