"""What can be checked of the deployment without a Docker engine: compose, images, Prometheus,
Grafana, and that every metric a dashboard queries is one the running services export."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from services.core.settings import Settings
from services.devstack.stack import SERVICE_APPS, Stack, service_url

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "infra/docker/Dockerfile").read_text()
DASHBOARDS = sorted((ROOT / "infra/grafana/dashboards").glob("*.json"))
SPENDSTREAM_SERVICES = ("migrate", *SERVICE_APPS)


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
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE, re.M))
    built = {}
    for service in COMPOSE["services"].values():
        if "build" in service:
            assert service["build"]["target"] in stages
            assert (ROOT / service["build"]["dockerfile"]).exists()
            built[service["image"]] = service["build"]["target"]
    for name in SPENDSTREAM_SERVICES:
        assert COMPOSE["services"][name]["image"] in built, name
    assert built["spendstream-light"] == "light" and built["spendstream-ml"] == "ml"
    assert {COMPOSE["services"][n]["image"] for n in ("ingest", "api")} == {"spendstream-light"}
    assert "USER spendstream" in DOCKERFILE and "HEALTHCHECK" in DOCKERFILE


@pytest.mark.slow
def test_light_image_dependencies_leave_out_torch() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    assert "torch" not in base and "sentence-transformers" not in base
    assert any(dep.startswith("torch==2.13.0") for dep in project["optional-dependencies"]["ml"])
    probe = "import sys, services.ingest.app, services.api.app; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_compose_sets_only_known_settings() -> None:
    known = {f"SPENDSTREAM_{name.upper()}" for name in Settings.model_fields}
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


def test_images_compile_the_module_make_install_compiles() -> None:
    makefile = (ROOT / "Makefile").read_text()
    compiled = re.search(r"^NATIVE\s*:=\s*(\S+)$", makefile, re.MULTILINE)
    assert compiled is not None
    assert f"mypyc {compiled.group(1)}" in DOCKERFILE
    pinned = re.search(r'"(mypy==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None and f"pip install {pinned.group(1)}" in DOCKERFILE
