"""The image's layers and lock, and the monitoring profile, checked as files: no Docker engine
runs on the project's machines, so nothing here builds an image or starts a container."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import yaml
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from quantum_trader.ops.metrics import Metrics

DOCKERFILE = (REPO / "Dockerfile").read_text()


def locked(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / name).read_text().splitlines():
        if line and not line.startswith("#"):
            package, version = line.split("==")
            pins[canonicalize_name(package)] = version
    return pins


def project() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return data


def test_the_dependency_layer_comes_before_the_source() -> None:
    lock_copy = DOCKERFILE.index("COPY --chown=trader:trader requirements.lock")
    lock_install = DOCKERFILE.index("pip install --quiet -r requirements.lock")
    source_copy = DOCKERFILE.index("COPY --chown=trader:trader . /app")
    assert lock_copy < lock_install < source_copy
    assert DOCKERFILE.count("COPY") == 2


def test_the_lock_pins_every_dependency_within_its_bounds() -> None:
    pins = locked("requirements.lock")
    for text in project()["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run scripts/lock-requirements.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_torch_stays_the_cpu_build_from_the_cpu_index() -> None:
    (torch_pin,) = project()["optional-dependencies"]["ml"]
    version = Requirement(torch_pin).specifier
    ml = locked("requirements-ml.lock")
    assert ml["torch"].endswith("+cpu")
    assert version.contains(ml["torch"])
    assert not set(ml) & set(locked("requirements.lock"))  # ML lock adds, never overrides
    assert re.search(r"--no-deps --index-url \"\$TORCH_INDEX\"", DOCKERFILE)
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in DOCKERFILE


def test_the_build_context_leaves_out_environments_data_and_secrets() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", ".env", "test-artifacts"} <= ignored


def test_the_status_port_is_published_on_loopback_only() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service = compose["services"]["quantum-trader"]
    assert service["ports"] == ["127.0.0.1:8080:8080"]
    assert service["environment"]["QT_SERVER__HOST"] == "0.0.0.0"


def test_the_monitoring_profile_scrapes_the_daemon_and_provisions_grafana() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "profiles" not in services["quantum-trader"]  # the daemon runs without the profile
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])
        for mount in services[name]["volumes"]:
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["quantum-trader:8080"]
    sources = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"


def test_every_dashboard_query_reads_a_metric_the_daemon_exports() -> None:
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/quantum-trader.json").read_text())
    uid = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    exported = _exported_names()
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            queried |= set(re.findall(r"\b((?:qt|process)_[a-z0-9_]+)", target["expr"]))
    assert queried
    assert queried <= exported, queried - exported
    wanted = {
        "qt_cycle_duration_seconds_bucket",
        "qt_decisions_total",
        "qt_orders_total",
        "qt_fills_total",
        "qt_errors_total",
        "qt_exchange_used_weight_1m",
        "qt_stream_up",
        "qt_equity_usdt",
        "qt_open_positions",
        "qt_loop_lag_seconds_bucket",
        "qt_status_connections",
        "qt_status_connections_closed_total",
    }
    assert wanted <= queried


def _exported_names() -> set[str]:
    metrics = Metrics()
    metrics.cycle_duration.observe(0.01)
    metrics.loop_lag.labels("executor").observe(0.0)
    for counter in (metrics.decisions, metrics.orders, metrics.errors, metrics.notifications):
        counter.labels(*["x"] * len(counter._labelnames)).inc()
    for family in (metrics.fills, metrics.trades_closed, metrics.requests):
        family.labels("x").inc()
    for gauge in (metrics.stream_up, metrics.stream_age, metrics.loop_lag_max):
        gauge.labels("x").set(1)
    metrics.loop_interval.labels("x").set(1)
    metrics.loop_overruns.labels("x").inc()
    text = metrics.render()[0].decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
