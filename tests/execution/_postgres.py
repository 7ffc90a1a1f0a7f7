"""A throw-away PostgreSQL server for tests: initdb in a temporary directory, 127.0.0.1, an unused port,
password authentication (scram-sha-256), the password only in a db-auth.yaml file of mode 600."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "opendrp_test"


def postgres_bin() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``; installs the Debian package when missing and we are root."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "-q", "postgresql"]
        subprocess.run(cmd, env=env, check=False, capture_output=True)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and shutil.which("initdb"):
        return Path(shutil.which("initdb") or "").parent
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(bindir: Path) -> Iterator[dict]:
    """Start a server; yield ``{"url", "password", "auth_file", "port"}``; stop it and remove its files."""
    top = Path(tempfile.mkdtemp(prefix="opendrp-pg-", dir="/tmp"))
    data, sock = top / "data", top / "sock"
    password = secrets.token_urlsafe(16)
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        owner = "postgres" if _user_exists("postgres") else "nobody"
        run_as = ["runuser", "-u", owner, "--"]
        sock.mkdir()
        pw = pwd.getpwnam(owner)
        os.chown(top, pw.pw_uid, pw.pw_gid)
        os.chown(sock, pw.pw_uid, pw.pw_gid)
    else:
        sock.mkdir()
    pwfile = top / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, pwd.getpwnam(run_as[2]).pw_uid, -1)
    pwfile.chmod(0o600)
    port = _free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
         f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    pwfile.unlink()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sock} -c fsync=off"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(top / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    auth_file = top / "db-auth.yaml"
    auth_file.write_text(
        f"- url: postgresql://{USER}@127.0.0.1:{port}/drp\n  username: {USER}\n  password: {password}\n"
    )
    auth_file.chmod(0o600)
    try:
        import psycopg

        common = {"host": "127.0.0.1", "port": port, "user": USER, "password": password, "autocommit": True}
        with psycopg.connect(dbname="postgres", **common) as conn:
            conn.execute("CREATE DATABASE drp")
        with psycopg.connect(dbname="drp", **common) as conn:
            conn.execute("CREATE EXTENSION btree_gist")
        yield {
            "url": f"postgresql://{USER}@127.0.0.1:{port}/drp",
            "password": password,
            "auth_file": auth_file,
            "port": port,
        }
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(top, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
