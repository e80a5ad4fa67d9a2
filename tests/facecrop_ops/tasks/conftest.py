"""Fixtures of the task-body tests: one moto S3 server for the package, a fresh bucket per test."""


import pytest

from facecrop_dev import samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops.s3io import S3Store


@pytest.fixture(scope="package")
def s3():
    with moto_server() as server:
        yield server


@pytest.fixture()
def bucket(s3, request):
    name = "t-" + request.node.name.replace("_", "-")[:40].lower().strip("-")
    s3.upload(name, "raw/", samples.dataset(n_people=3, n_eval=3))
    return name


@pytest.fixture()
def store(s3):
    return S3Store(s3.client(), threads=8)
