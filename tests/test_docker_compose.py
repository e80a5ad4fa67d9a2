"""docker-compose.yaml, checked without a Docker engine: schema, wiring, secrets, setup.
tests/deploy starts the same Airflow services with the file's settings."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from facecrop_dev.compose import ComposeError, airflow_services

REPO = Path(__file__).resolve().parents[1]
# What README tells people to put in .env.
ENV_FILE = {"FACECROP_S3_SECRET_KEY": "s3", "POSTGRES_PASSWORD": "pg", "AIRFLOW_JWT_SECRET": "jwt", "AIRFLOW_API_SECRET_KEY": "api"}


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
    dockerfile = (REPO / services["airflow-scheduler"]["build"]["dockerfile"]).read_text()
    assert "requirements.txt" in dockerfile and "requirements-dev" not in dockerfile  # the image carries what runs
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "airflow-worker", "airflow-worker-gpu", "minio", "postgres", "redis"} <= set(services)


def test_init_creates_the_gpu_pool_the_dag_uses_and_sample_data(compose):
    init = " ".join(compose["services"]["airflow-init"]["command"])
    assert 'airflow pools set gpu 1' in init and "airflow db migrate" in init
    assert "python -m facecrop_dev samples s3://facecrop/dataset/" in init
    assert compose["services"]["airflow-scheduler"]["environment"]["FACECROP_GPU_POOL"] == "gpu"


def test_s3_is_minio_through_the_airflow_connection(compose):
    env = compose["services"]["airflow-worker"]["environment"]
    assert '"endpoint_url": "http://minio:9000"' in env["AIRFLOW_CONN_AWS_DEFAULT"]


def test_gpu_worker_is_optional_takes_a_gpu_and_serves_the_queue_detection_is_routed_to(compose):
    assert compose["services"]["airflow-worker-gpu"]["profiles"] == ["gpu"]
    devices = compose["services"]["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    services = airflow_services(compose, {**ENV_FILE, "FACECROP_GPU_QUEUE": "gpu"}, profiles=("gpu",))
    gpu = services["airflow-worker-gpu"]
    assert gpu.command[gpu.command.index("--queues") + 1] == services["airflow-scheduler"].environment["FACECROP_GPU_QUEUE"]
    assert "airflow-worker-gpu" not in airflow_services(compose, ENV_FILE)


def test_the_file_refuses_to_start_without_each_secret_of_the_env_file(compose):
    for name in ENV_FILE:
        with pytest.raises(ComposeError, match=f"set {name} in .env"):
            airflow_services(compose, {k: v for k, v in ENV_FILE.items() if k != name})


def test_every_airflow_container_shares_one_jwt_secret_and_api_secret_key(compose):
    """Otherwise each makes up its own and every task fails with "Invalid auth token"."""
    services = airflow_services(compose, ENV_FILE, profiles=("gpu",))
    assert len(services) == 7
    for svc in services.values():
        assert svc.environment["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt"
        assert svc.environment["AIRFLOW__API__SECRET_KEY"] == "api"


def test_metadata_db_and_celery_results_use_the_installed_psycopg2(compose):
    env = airflow_services(compose, ENV_FILE)["airflow-worker"].environment
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://airflow:pg@postgres/airflow"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://airflow:pg@postgres/airflow"
    assert "psycopg2-binary" in (REPO / "requirements.txt").read_text()


def test_minio_health_is_checked_with_its_own_client(compose):
    assert compose["services"]["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]


def test_the_api_server_reads_what_workers_log_from_one_shared_volume(compose):
    assert "airflow-logs" in compose["volumes"]
    for name, svc in compose["services"].items():
        if name.startswith("airflow-"):
            assert "airflow-logs:/opt/airflow/logs" in svc["volumes"], name


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
