import pytest

from facecrop_dev.compose import ComposeError, airflow_services, interpolate, localize

VARS = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ("${SET}", "value"), ("$SET/x", "value/x"), ("${UNSET}", ""), ("$$SET", "$SET"),
    ("${UNSET:-fallback}", "fallback"), ("${EMPTY:-fallback}", "fallback"), ("${EMPTY-fallback}", ""),
    ("${UNSET-fallback}", "fallback"), ("${SET:-fallback}", "value"), ("${UNSET:-${SET}}", "value"),
    ("${SET:?needed}", "value"), ("db://u:${SET:?set it in .env}@host/db", "db://u:value@host/db"),
])
def test_interpolation_follows_compose(text, expected):
    assert interpolate(text, VARS) == expected


@pytest.mark.parametrize("text", ["${UNSET:?set UNSET in .env}", "${EMPTY:?set UNSET in .env}", "${UNSET?set UNSET in .env}"])
def test_a_required_variable_that_is_missing_stops_with_the_files_message(text):
    with pytest.raises(ComposeError, match="set UNSET in .env"):
        interpolate(text, VARS)


def test_localize_points_service_urls_and_container_paths_at_local_ones():
    hosts = {"postgres": "127.0.0.1:5555", "minio:9000": "127.0.0.1:7777", "airflow-apiserver": "127.0.0.1:8888"}
    paths = {"/opt/airflow": "/home/x", "/opt/airflow/plugins": "/repo/plugins"}
    assert localize("postgresql+psycopg2://airflow:pw@postgres/airflow", hosts, paths) == \
        "postgresql+psycopg2://airflow:pw@127.0.0.1:5555/airflow"
    assert localize('{"extra": {"endpoint_url": "http://minio:9000"}}', hosts, paths) == \
        '{"extra": {"endpoint_url": "http://127.0.0.1:7777"}}'
    assert localize("http://airflow-apiserver:8080/execution/", hosts, paths) == "http://127.0.0.1:8888/execution/"
    assert localize("redis://redis:6379/0", hosts, paths) == "redis://redis:6379/0"  # not mapped: left alone
    assert localize("/opt/airflow/plugins:/opt/airflow/x:/opt/airflowish", hosts, paths) == "/repo/plugins:/home/x/x:/opt/airflowish"


def test_airflow_services_with_their_profiles_and_merged_environment():
    base = {"A": "${SET}", "B": "${UNSET:-b}"}
    compose = {"services": {
        "postgres": {"image": "postgres"},
        "airflow-scheduler": {"command": "scheduler", "environment": base},
        "airflow-init": {"entrypoint": "/bin/bash", "command": ["-c", "airflow db migrate"], "environment": {**base, "C": "c"}},
        "airflow-worker-gpu": {"profiles": ["gpu"], "command": "celery worker --queues ${Q:-gpu}", "environment": base},
    }}
    plain = airflow_services(compose, VARS)
    assert set(plain) == {"airflow-scheduler", "airflow-init"}
    assert plain["airflow-scheduler"].environment == {"A": "value", "B": "b"}
    assert plain["airflow-init"].entrypoint == ["/bin/bash"] and plain["airflow-init"].command == ["-c", "airflow db migrate"]
    gpu = airflow_services(compose, {**VARS, "Q": "cuda"}, profiles=("gpu",))
    assert gpu["airflow-worker-gpu"].command == ["celery", "worker", "--queues", "cuda"]
