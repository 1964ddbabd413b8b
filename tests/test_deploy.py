"""What can be checked of the deployment without a Docker engine: compose, images, Prometheus,
Grafana, and that every metric a dashboard queries is one the running services export."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import httpx
import pytest
import yaml

from services.core.settings import variable_names
from services.devstack.stack import SERVICE_APPS, Stack, service_url

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DASHBOARDS = sorted((ROOT / "infra/grafana/dashboards").glob("*.json"))
SPENDSTREAM_SERVICES = ("migrate", *SERVICE_APPS)


@dataclass
class Stage:
    """One stage of the Dockerfile: its parent (an image or an earlier stage) and instructions."""

    parent: str
    instructions: list[dockerfile.Command]

    def all(self, cmd: str) -> list[dockerfile.Command]:
        return [i for i in self.instructions if i.cmd == cmd]


def dockerfile_stages() -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in dockerfile.parse_file(str(ROOT / "infra/docker/Dockerfile")):
        if instruction.cmd == "FROM":
            parent, _, name = instruction.value
            current = stages[name] = Stage(parent, [])
        elif current is not None:
            current.instructions.append(instruction)
    return stages


def inherited(stages: dict[str, Stage], name: str) -> list[dockerfile.Command]:
    """A stage's instructions after those of the stages it is built on."""
    stage = stages[name]
    before = inherited(stages, stage.parent) if stage.parent in stages else []
    return [*before, *stage.instructions]


STAGES = dockerfile_stages()


def test_compose_runs_kafka_postgres_the_services_and_monitoring() -> None:
    services = COMPOSE["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["postgres"]["image"] == "postgres:16" and services["postgres"]["volumes"]
    assert {"prometheus", "grafana", "kafka-topics", *SPENDSTREAM_SERVICES} <= set(services)
    for name in SERVICE_APPS:
        conditions = services[name]["depends_on"]
        assert conditions["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["command"] == ["serve", name]
    assert "container_name" not in services["scorer"] and "ports" not in services["scorer"], (
        "scorers can be scaled: no fixed name or host port"
    )


def test_every_image_comes_from_a_build_target_of_the_dockerfile() -> None:
    built = {}
    for service in COMPOSE["services"].values():
        if "build" in service:
            assert service["build"]["target"] in STAGES
            assert (ROOT / service["build"]["dockerfile"]).exists()
            built[service["image"]] = service["build"]["target"]
    for name in SPENDSTREAM_SERVICES:
        assert COMPOSE["services"][name]["image"] in built, name
    assert built["spendstream-light"] == "light" and built["spendstream-ml"] == "ml"
    assert {COMPOSE["services"][n]["image"] for n in ("ingest", "api")} == {"spendstream-light"}
    for target in ("light", "ml"):
        instructions = inherited(STAGES, target)
        users = [i.value[0] for i in instructions if i.cmd == "USER"]
        assert users and users[-1] == "spendstream", f"{target} runs as root"
        (health,) = STAGES[target].all("HEALTHCHECK")
        assert health.value[0] == "CMD" and "/healthz" in health.value[1]
        assert [i.value for i in STAGES[target].all("ENTRYPOINT")] == [("spendstream",)]
        (venv,) = STAGES[target].all("COPY")
        assert venv.flags == (f"--from=builder-{target}",) and venv.value == ("/venv", "/venv")


@pytest.mark.slow
def test_light_image_dependencies_leave_out_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    assert "torch" not in base and "sentence-transformers" not in base
    assert any(dep.startswith("torch==2.13.0") for dep in project["optional-dependencies"]["ml"])
    probe = "import sys, services.ingest.app, services.api.app; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_compose_sets_only_known_settings() -> None:
    known = variable_names()
    for name in SPENDSTREAM_SERVICES:
        variables = {
            k for k in COMPOSE["services"][name]["environment"] if k.startswith("SPENDSTREAM_")
        }
        assert variables and variables <= known, variables - known
    assert "PASSWORD" not in json.dumps(COMPOSE).replace("${POSTGRES_PASSWORD", "").replace(
        "${GRAFANA_ADMIN_PASSWORD", ""
    ).replace("POSTGRES_PASSWORD", "").replace("GF_SECURITY_ADMIN_PASSWORD", "")
    env_example = (ROOT / ".env.example").read_text()
    assert "POSTGRES_PASSWORD=" in env_example and "SPENDSTREAM_WEBHOOK_SECRET=" in env_example


def test_prometheus_scrapes_all_four_services() -> None:
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == set(SERVICE_APPS)


def promql(dashboard: dict) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_grafana_provisioning_and_dashboards_are_valid() -> None:
    assert len(DASHBOARDS) >= 2
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
        for expr in promql(dashboard):
            assert expr.count("(") == expr.count(")"), expr
    datasource = yaml.safe_load(
        (ROOT / "infra/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["type"] == "prometheus"


def exported_names(text: str) -> set[str]:
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
        }
        names.update(name + s for s in suffixes.get(kind, ()))
    return names


@pytest.mark.integration
def test_every_dashboard_metric_is_exported(stack: Stack) -> None:
    exported: set[str] = set()
    for name in SERVICE_APPS:
        response = httpx.get(f"{service_url(stack.settings, name)}/metrics", timeout=10)
        assert response.status_code == 200
        exported |= exported_names(response.text)
    for path in DASHBOARDS:
        for expr in promql(json.loads(path.read_text())):
            for metric in re.findall(r"spendstream_[a-z0-9_]+", expr):
                assert metric in exported, f"{path.name}: {metric} is not exported"
    for metric in exported:
        assert re.fullmatch(r"[a-z_:][a-z0-9_:]*", metric)


def test_the_ml_image_builds_the_compiled_module_the_build_backend_compiles() -> None:
    """setup.py names what mypyc compiles; the ml builder has a C compiler before it installs
    the package, and the light image never needs the module."""
    setup = ast.parse((ROOT / "setup.py").read_text())
    (native,) = [
        ast.literal_eval(node.value)
        for node in setup.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NATIVE"
    ]
    assert native == ["services/scorer/features.py"]
    assert (ROOT / native[0]).exists()
    runs = [i.value[0] for i in STAGES["builder-ml"].all("RUN")]
    compiler = next(n for n, run in enumerate(runs) if "gcc" in run.split())
    installs = [n for n, run in enumerate(runs) if "pip install" in run and " ." in run]
    assert installs and compiler < min(installs)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build_requires = project["build-system"]["requires"]
    mypy_pin = next(d for d in project["project"]["optional-dependencies"]["dev"] if "mypy" in d)
    assert mypy_pin in build_requires, "the compiler is the mypy the type check runs"
