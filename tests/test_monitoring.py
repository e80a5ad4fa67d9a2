"""The miss-rate dashboard's files (docker/): what can be checked without Docker.

Prometheus's own promtool checks its config. No statsd_exporter or Grafana runs here, so the
StatsD mapping is applied to the gauge names the DAG sends with the exporter's documented
glob rules (a `*` is one dot-separated part; $1 / ${1} in names and labels), and every
dashboard query must name a metric that mapping produces.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from facecrop_dev.compose import airflow_services
from facecrop_dev.local_services import CannotInstall, ensure_debian_packages
from facecrop_ops.dataset.naming import CLASSES, UNLABELED
from facecrop_ops.reporting import metrics

from .needs import cannot_install

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
ENV_FILE = {"FACECROP_S3_SECRET_KEY": "s", "POSTGRES_PASSWORD": "p", "AIRFLOW_JWT_SECRET": "j", "AIRFLOW_API_SECRET_KEY": "a",
            "AIRFLOW_ADMIN_PASSWORD": "ap", "AIRFLOW_REVIEWER_PASSWORD": "rp"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _sent_by_the_dag(compose) -> list[str]:
    """The StatsD names record_metrics sends, with the prefix the compose file gives Airflow."""
    prefix = airflow_services(compose, ENV_FILE)["airflow-worker"].environment["AIRFLOW__METRICS__STATSD_PREFIX"]
    classes = {c: metrics.as_json(metrics.per_class([]))["all"] | {"miss_rate": 0.0} for c in (*CLASSES, UNLABELED, "all")}
    return [f"{prefix}.{name}" for name in metrics.gauges(classes)]


def _map(name: str, mappings: list[dict]) -> tuple[str, dict[str, str]] | None:
    for rule in mappings:
        m = re.fullmatch(re.escape(rule["match"]).replace(r"\*", r"([^.]+)"), name)
        if m:
            return _fill(rule["name"], m), {k: _fill(v, m) for k, v in rule.get("labels", {}).items()}
    return None


def _fill(text: str, match: re.Match) -> str:
    return re.sub(r"\$\{?(\d+)\}?", lambda g: match.group(int(g.group(1))), text)


@pytest.fixture(scope="module")
def prometheus_metrics(compose):
    mappings = yaml.safe_load((DOCKER / "statsd-mapping.yml").read_text())["mappings"]
    return {name: _map(name, mappings) for name in _sent_by_the_dag(compose)}


def test_every_gauge_the_dag_sends_becomes_a_per_class_prometheus_metric(prometheus_metrics):
    assert len(prometheus_metrics) == 9 * len(metrics.FIELDS)
    for statsd_name, mapped in prometheus_metrics.items():
        field, cls = statsd_name.split(".")[-2:]
        assert mapped == (f"facecrop_{field}", {"class": cls}), statsd_name
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", mapped[0])


def test_airflow_sends_its_metrics_where_the_exporter_listens(compose):
    env = airflow_services(compose, ENV_FILE)["airflow-scheduler"].environment
    assert env["AIRFLOW__METRICS__STATSD_ON"] == "True"
    exporter = compose["services"]["statsd-exporter"]
    assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter"
    assert f"--statsd.listen-udp=:{env['AIRFLOW__METRICS__STATSD_PORT']}" in exporter["command"]
    assert "./docker/statsd-mapping.yml:/etc/statsd/mapping.yml:ro" in exporter["volumes"]
    assert "--statsd.mapping-config=/etc/statsd/mapping.yml" in exporter["command"]


def test_prometheus_config_is_valid_and_scrapes_the_exporter(compose):
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    listen = next(a for a in compose["services"]["statsd-exporter"]["command"] if a.startswith("--web.listen-address="))
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [f"statsd-exporter{listen.split('=')[1]}"]
    assert "./docker/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in compose["services"]["prometheus"]["volumes"]
    try:
        ensure_debian_packages({"promtool": "prometheus"})
    except CannotInstall as exc:
        cannot_install("no promtool", exc)
    checked = subprocess.run(["promtool", "check", "config", str(DOCKER / "prometheus.yml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_queries_only_metrics_the_mapping_produces(compose, prometheus_metrics):
    dashboard = json.loads((DOCKER / "grafana/dashboards/facecrop.json").read_text())
    produced = {name for name, _ in prometheus_metrics.values()}
    datasource = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    titles = [p["title"] for p in dashboard["panels"]]
    assert any("Miss rate per class" in t for t in titles) and "Photos per run" in titles
    assert any("Fallbacks and errors" in t for t in titles)
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"]
            named = set(re.findall(r"\b(facecrop_[a-z_]+)\b", target["expr"]))
            assert named and named <= produced, (panel["title"], target["expr"])
            assert set(re.findall(r'class[!=]+"([^"]*)"', target["expr"])) <= {*CLASSES, UNLABELED, "all"}


def test_grafana_loads_the_provisioned_datasource_and_dashboard(compose):
    grafana = compose["services"]["grafana"]
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/facecrop.yml").read_text())["providers"][0]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./docker/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./docker/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(provider["options"]["path"])
    datasource = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "${FACECROP_BIND_ADDRESS:-127.0.0.1}:9090:9090" in compose["services"]["prometheus"]["ports"]
