"""Runs the whole pipeline locally: embedded infrastructure when none is configured, then the four
services as separate processes, each watched through its /healthz."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from services.core.db import migrate
from services.core.kafka import ensure_topics
from services.core.processes import tied_to_parent
from services.core.settings import Settings, settings_env
from services.devstack.embedded import (
    EmbeddedKafka,
    EmbeddedPostgres,
    free_port,
    free_ports,
    local_secret,
    stop_process,
)

log = logging.getLogger(__name__)

SERVICE_APPS = {
    "ingest": "services.ingest.app:create_app",
    "scorer": "services.scorer.app:create_app",
    "forecaster": "services.forecaster.app:create_app",
    "api": "services.api.app:create_app",
}
RUNTIME_FILE = "runtime.json"


def service_port(settings: Settings, name: str) -> int:
    return settings.http.port_of(name)


def service_url(settings: Settings, name: str) -> str:
    return f"http://{settings.http.host}:{service_port(settings, name)}"


def load_runtime(settings: Settings) -> Settings:
    """Settings completed with the broker and database a running ``spendstream up`` started."""
    if settings.database.url and settings.kafka.bootstrap:
        return settings
    path = settings.data_dir / RUNTIME_FILE
    if not path.exists():
        return settings
    runtime = orjson.loads(path.read_bytes())
    return settings.replace(
        database_url=settings.database.url or runtime.get("database_url"),
        kafka_bootstrap=settings.kafka.bootstrap or runtime.get("kafka_bootstrap"),
    )


def isolated_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a stack of its own beside any other: free ports everywhere, its own data."""
    ports = ("embedded_kafka", "embedded_postgres", *SERVICE_APPS)
    fields: dict[str, Any] = {
        f"{name}_port": port for name, port in zip(ports, free_ports(len(ports)), strict=True)
    }
    return Settings.model_validate({"data_dir": data_dir, **fields, **overrides})


@dataclass
class Stack:
    settings: Settings
    services: tuple[str, ...] = tuple(SERVICE_APPS)
    durable: bool = True
    kafka: EmbeddedKafka | None = None
    postgres: EmbeddedPostgres | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    replica_ports: dict[str, int] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    def env(self) -> dict[str, str]:
        self.settings.database.require_url()
        return {**os.environ, **settings_env(self.settings)}

    def start_infrastructure(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        updates: dict[str, object] = {}
        if not s.kafka.bootstrap:
            self.kafka = EmbeddedKafka(s.kafka.embedded_port, self.log_dir / "kafka.log")
            updates["kafka_bootstrap"] = self.kafka.start()
            # tansu has no idempotent producer; asking for one would fail every send.
            updates["kafka_idempotent_producer"] = False
        if not s.security.model_signing_key:
            updates["model_signing_key"] = SecretStr(local_secret(s.data_dir / "model-signing.key"))
        if not s.database.url:
            self.postgres = EmbeddedPostgres(
                s.data_dir / "pg", s.database.embedded_port, durable=self.durable
            )
            updates["database_url"] = self.postgres.start()
        self.settings = s.replace(**updates)
        asyncio.run(self._prepare())
        runtime = s.data_dir / RUNTIME_FILE
        runtime.touch(mode=0o600)  # it holds the database's password
        runtime.write_bytes(
            orjson.dumps(
                {
                    "pid": os.getpid(),
                    "kafka_bootstrap": self.settings.kafka.bootstrap,
                    "database_url": self.settings.database.url,
                }
            )
        )

    async def _prepare(self) -> None:
        await migrate(self.settings.database.require_url())
        deadline = time.monotonic() + 30
        while True:
            try:
                await ensure_topics(self.settings)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create topics: {exc!r}") from exc
                await asyncio.sleep(0.5)

    def start_service(
        self, name: str, *, replica: int = 0, settings: dict[str, str] | None = None
    ) -> str:
        """Start a service; ``replica`` > 0 starts one more instance of it (a scorer, say) on a
        port of its own, as ``docker compose --scale`` would; ``settings`` override the stack's
        (``SPENDSTREAM_*`` variables). Returns its process name."""
        label = name if replica == 0 else f"{name}-{replica}"
        env = {**self.env(), **(settings or {})}
        if replica:
            self.replica_ports[label] = free_port()
            env[f"SPENDSTREAM_{name.upper()}_PORT"] = str(self.replica_ports[label])
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = tied_to_parent([sys.executable, "-m", "services.cli.main", "serve", name])
        with (self.log_dir / f"{label}.log").open("ab") as out:
            self.processes[label] = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return label

    def url(self, label: str) -> str:
        if label in self.replica_ports:
            return f"http://{self.settings.http.host}:{self.replica_ports[label]}"
        return service_url(self.settings, label)

    def stop_service(self, name: str, sig: int = signal.SIGTERM) -> None:
        stop_process(self.processes.pop(name, None), sig)

    def wait_healthy(self, names: tuple[str, ...] | None = None, timeout: float = 120.0) -> None:
        pending = set(names or self.services)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name in sorted(pending):
                    proc = self.processes.get(name)
                    if proc is not None and proc.poll() is not None:
                        log_file = self.log_dir / f"{name}.log"
                        raise RuntimeError(
                            f"{name} exited with code {proc.returncode}; see {log_file}"
                        )
                    try:
                        ok = client.get(f"{self.url(name)}/healthz").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        pending.discard(name)
                if pending and time.monotonic() > deadline:
                    raise RuntimeError(
                        f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))}"
                    )
                if pending:
                    time.sleep(0.3)

    def start(self) -> None:
        self.start_infrastructure()
        for name in self.services:
            self.start_service(name)
        self.wait_healthy()

    def failed_services(self) -> list[str]:
        return [name for name, proc in self.processes.items() if proc.poll() is not None]

    def stop(self) -> None:
        for name in list(self.processes):
            proc = self.processes[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in list(self.processes):
            self.stop_service(name)
        if self.postgres is not None:
            self.postgres.stop()
        if self.kafka is not None:
            self.kafka.stop()
        runtime = self.settings.data_dir / RUNTIME_FILE
        if runtime.exists():
            runtime.unlink()
