"""OpenTelemetry from [metrics] config alone: `airflow dags test` with otel_on exports the
DAG's gauges over OTLP/HTTP to a collector of the test's own on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from facecrop_dev import local_run, samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops.reporting import metrics


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    requests = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            requests.append((self.path, ExportMetricsServiceRequest.FromString(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    collector = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    home = tmp_path_factory.mktemp("airflow")
    try:
        with moto_server() as s3:
            s3.upload("otel-data", "d/", samples.dataset(n_people=1, n_eval=1))
            env = local_run.airflow_env(home, s3)
            env.update(AIRFLOW__METRICS__OTEL_ON="True", AIRFLOW__METRICS__OTEL_HOST="127.0.0.1",
                       AIRFLOW__METRICS__OTEL_PORT=str(collector.server_port), AIRFLOW__METRICS__OTEL_INTERVAL_MILLISECONDS="1000")
            local_run.prepare_airflow(env)
            local_run.airflow(env, "dags", "test", "facecrop_etl", "--conf", json.dumps({"source_uri": "s3://otel-data/d/"}), quiet=True)
            client = s3.client()
            key = next(o["Key"] for o in client.list_objects_v2(Bucket="otel-data", Prefix="d/_facecrop/runs/")["Contents"]
                       if o["Key"].endswith("metrics.json"))
            doc = json.loads(client.get_object(Bucket="otel-data", Key=key)["Body"].read())
    finally:
        collector.shutdown()
        collector.server_close()
    gauges = {}
    for _, request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name.startswith("airflow.facecrop.") and m.gauge.data_points:
                        gauges[m.name] = m.gauge.data_points[-1].as_double or m.gauge.data_points[-1].as_int
    return {"paths": {p for p, _ in requests}, "gauges": gauges, "doc": doc}


def test_the_dags_gauges_reach_an_otlp_collector_with_the_values_of_metrics_json(exported):
    assert exported["paths"] == {"/v1/metrics"}
    expected = {f"airflow.{name}": value for name, value in metrics.gauges(exported["doc"]["classes"]).items()}
    assert exported["gauges"] == pytest.approx(expected, abs=1e-9)
