"""docker-compose.yaml, checked without a Docker engine: schema, wiring, secrets, setup."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_valid_against_the_compose_specification(compose):
    schema = json.loads((REPO / "tests/fixtures/compose_spec.json").read_text())
    jsonschema.validate(compose, schema)


def test_every_dependency_names_a_service_and_the_image_builds_from_our_requirements(compose):
    services = compose["services"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    dockerfile = REPO / services["airflow-scheduler"]["build"]["dockerfile"]
    assert "requirements.txt" in dockerfile.read_text()
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "airflow-worker", "airflow-worker-gpu", "minio", "postgres", "redis"} <= set(services)


def test_init_creates_the_gpu_pool_the_dag_uses_and_sample_data(compose):
    init = " ".join(compose["services"]["airflow-init"]["command"])
    assert 'airflow pools set gpu 1' in init and "airflow db migrate" in init
    assert "python -m facecrop_ops samples s3://facecrop/dataset/" in init
    assert compose["services"]["airflow-scheduler"]["environment"]["FACECROP_GPU_POOL"] == "gpu"


def test_s3_is_minio_through_the_airflow_connection(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    assert '"endpoint_url": "http://minio:9000"' in env["AIRFLOW_CONN_AWS_DEFAULT"]


def test_gpu_worker_is_optional_and_takes_a_gpu(compose):
    gpu = compose["services"]["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "--queues" in gpu["command"]


def test_no_secret_is_written_in_the_file(compose):
    """Every password is a required ${VAR:?...} from .env, never a literal."""
    checked = 0
    for svc in compose["services"].values():
        for key, value in (svc.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), (key, value)
                checked += 1
            for url_secret in re.findall(r"://airflow:([^@]+)@", str(value)):
                assert url_secret.startswith("${POSTGRES_PASSWORD:?"), key
                checked += 1
            if key.startswith("AIRFLOW_CONN_"):
                assert json.loads(re.sub(r"\$\{[^}]+\}", "x", value))["password"] == "x"
                checked += 1
    assert checked >= 10
