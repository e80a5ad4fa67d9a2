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
ENV_FILE = {"FACECROP_S3_SECRET_KEY": "s3", "POSTGRES_PASSWORD": "pg", "AIRFLOW_JWT_SECRET": "jwt", "AIRFLOW_API_SECRET_KEY": "api",
            "AIRFLOW_ADMIN_PASSWORD": "adminpw", "AIRFLOW_REVIEWER_PASSWORD": "reviewerpw"}


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
            if re.search("PASSWORD|SECRET", key) and not key.endswith("_FILE"):  # a file of them is a path
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), (key, value)
                checked += 1
            for url_secret in re.findall(r"://airflow:([^@]+)@", str(value)):
                assert url_secret.startswith("${POSTGRES_PASSWORD:?"), key
                checked += 1
            if key.startswith("AIRFLOW_CONN_"):
                assert json.loads(re.sub(r"\$\{[^}]+\}", "x", value))["password"] == "x"
                checked += 1
    assert checked >= 10


def test_every_published_port_listens_on_loopback_unless_the_user_opts_in(compose):
    published = {name: svc["ports"] for name, svc in compose["services"].items() if svc.get("ports")}
    assert set(published) == {"minio", "prometheus", "grafana", "airflow-apiserver"}
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("${FACECROP_BIND_ADDRESS:-127.0.0.1}:"), (name, port)


def test_airflow_asks_for_a_login_of_named_users_whose_passwords_come_from_the_env_file(compose):
    services = airflow_services(compose, ENV_FILE)
    env = services["airflow-apiserver"].environment
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,reviewer:user"
    passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    mounted = {name for name, svc in compose["services"].items() if "airflow-auth:" + passwords.rsplit("/", 1)[0] in svc.get("volumes", [])}
    assert mounted == {"airflow-init", "airflow-apiserver"}  # no worker, which runs any DAG's code, can read them
    init = services["airflow-init"]
    script = " ".join(init.command)
    assert 'os.environ["AIRFLOW_ADMIN_PASSWORD"]' in script and 'os.environ["AIRFLOW_REVIEWER_PASSWORD"]' in script
    assert init.environment["AIRFLOW_ADMIN_PASSWORD"] == "adminpw"  # from .env, required
    for name in ("AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_REVIEWER_PASSWORD"):
        with pytest.raises(ComposeError, match=f"set {name} in .env"):
            airflow_services(compose, {k: v for k, v in ENV_FILE.items() if k != name})


def test_airflow_reaches_minio_as_its_own_user_limited_to_the_dataset_bucket(compose):
    services = compose["services"]
    assert services["minio"]["environment"]["MINIO_ROOT_USER"] == "${MINIO_ROOT_USER:-minio-root}"
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == "${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD in .env}"
    for svc in airflow_services(compose, ENV_FILE, profiles=("gpu",)).values():
        assert not [v for v in svc.environment.values() if "MINIO_ROOT" in v], svc  # root stays with MinIO
        conn = json.loads(svc.environment["AIRFLOW_CONN_AWS_DEFAULT"])
        assert conn["login"] == "facecrop" and conn["password"] == "s3"
    init = " ".join(services["minio-init"]["command"])
    assert 'mc admin user add local "$$FACECROP_S3_ACCESS_KEY"' in init
    assert "mc admin policy attach local facecrop-dataset --user" in init
    policy = json.loads((REPO / "docker/minio-policy.json").read_text())
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::facecrop", "arn:aws:s3:::facecrop/*"}
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert not [a for a in actions if "*" in a or a.startswith(("admin:", "s3:PutBucketPolicy", "s3:DeleteBucket"))]
    assert services["airflow-scheduler"]["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}


def test_grafana_has_no_anonymous_viewers(compose):
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_the_env_file_is_kept_out_of_git_and_of_the_image():
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()
