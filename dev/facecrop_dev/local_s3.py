"""A real S3 API on 127.0.0.1 (moto's server) for the demo and the end-to-end tests.

The pipeline reaches it exactly as it would reach MinIO or AWS: through an Airflow
connection whose extra holds `endpoint_url`. Credentials are random per process, so none
are written in code or logs.
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LocalS3:
    endpoint_url: str
    access_key: str = field(default_factory=lambda: "local-" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    region: str = "us-east-1"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def airflow_connection_env(self, conn_id: str = "aws_default") -> dict[str, str]:
        """`AIRFLOW_CONN_<ID>`: an aws connection Airflow reads from the environment."""
        conn = {
            "conn_type": "aws", "login": self.access_key, "password": self.secret_key,
            "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}

    def upload(self, bucket: str, prefix: str, files: Iterable[tuple[str, bytes]]) -> int:
        client = self.client()
        client.create_bucket(Bucket=bucket)
        count = 0
        for key, data in files:
            client.put_object(Bucket=bucket, Key=prefix + key, Body=data)
            count += 1
        return count


@contextmanager
def moto_server(port: int = 0) -> Iterator[LocalS3]:
    """Start moto's S3 server on 127.0.0.1 in a thread; stop it on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield LocalS3(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
