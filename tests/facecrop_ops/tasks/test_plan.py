"""The `plan` task against a real S3 API (moto's server on 127.0.0.1): what it refuses before any data moves and what it writes."""

import json
import re

import pytest

from facecrop_ops import tasks
from facecrop_ops.config.run import ParamsError
from facecrop_ops.dataset.csv_rewrite import CsvError
from facecrop_ops.s3io import S3Store, StorageError
from tests.facecrop_ops.tasks.helpers import RUN, RUN_DIR, Untouchable, keys, params


def test_bad_params_stop_the_run_before_any_s3_call():
    with pytest.raises(ParamsError, match="min_face_size=0"):
        tasks.plan({"source_uri": "s3://data/raw", "min_face_size": 0}, RUN, Untouchable())


def test_a_missing_bucket_is_named(store):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist: check source_uri"):
        tasks.plan({"source_uri": "s3://no-such-bucket/raw"}, RUN, store)


def test_a_csv_without_the_path_column_stops_the_plan_before_shards_are_written(store, bucket):
    with pytest.raises(CsvError, match="has no column 'file'"):
        tasks.plan(params(bucket, path_column="file"), RUN, store)
    assert keys(store, bucket, "out/") == []


def test_a_missing_csv_is_named(store, bucket):
    with pytest.raises(tasks.RunError, match=r"CSV s3://.*/nope.csv does not exist: fix csv_uris"):
        tasks.plan(params(bucket, csv_uris=[f"s3://{bucket}/raw/nope.csv"]), RUN, store)


def test_plan_writes_small_shard_refs_and_shard_key_lists(store, bucket):
    refs = tasks.plan(params(bucket), RUN, store)
    assert [r["shard"] for r in refs] == list(range(len(refs))) and 2 <= len(refs) <= 4
    assert {r["plan"] for r in refs} == {json.loads(store.get(bucket, RUN_DIR + "plan.json"))["plan_id"]}
    assert sum(r["photos"] for r in refs) == 3 * 7 + 4  # 3 eval photos + the non-image named .jpg
    plan_doc = json.loads(store.get(bucket, RUN_DIR + "plan.json"))
    assert plan_doc["skipped_hidden"] == ["train/images/000001_male_White_47/._mask1.jpg"]
    assert plan_doc["csv_uris"] == [f"s3://{bucket}/raw/test_data.csv", f"s3://{bucket}/raw/train_data.csv"]


class Flaky:
    """An S3 client whose `fail` operation answers 503 SlowDown (after boto3's retries gave up)."""

    def __init__(self, client, fail):
        self.client, self.fail = client, fail

    def __getattr__(self, name):
        from botocore.exceptions import ClientError

        if name == self.fail:
            def refuse(*args, **kwargs):
                raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, name)
            return refuse
        return getattr(self.client, name)


def test_a_throttled_listing_is_retried_but_a_refused_one_is_final(store, bucket, s3):
    from botocore.exceptions import ClientError

    class Paginator:
        def __init__(self, code):
            self.code = code

        def paginate(self, **kwargs):
            raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "ListObjectsV2")

    for code, raised in (("SlowDown", ClientError), ("InternalError", ClientError), ("AccessDenied", StorageError)):
        client = Flaky(s3.client(), None)
        client.get_paginator = lambda name, code=code: Paginator(code)
        with pytest.raises(raised) as err:
            tasks.plan(params(bucket), RUN, S3Store(client))
        assert type(err.value) is raised


def test_an_empty_csv_is_named(store, bucket, s3):
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body=b"")
    with pytest.raises(tasks.RunError, match=re.escape(f"CSV s3://{bucket}/raw/train_data.csv is empty (0 bytes)")):
        tasks.plan(params(bucket), RUN, store)


def test_a_header_cell_quoted_across_lines_is_read_whole(store, bucket, s3):
    """Excel quotes a header cell holding a line break: the path column after it is still found."""
    body = s3.client().get_object(Bucket=bucket, Key="raw/train_data.csv")["Body"].read().decode()
    header, rest = body.split("\n", 1)
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body=f'"notes\nfrom 2020",{header}\n'.encode()
                           + "".join(f",{line}\n" for line in rest.splitlines()).encode())
    assert tasks.plan(params(bucket), RUN, store)
    with pytest.raises(CsvError, match="has no column 'file'"):
        tasks.plan(params(bucket, path_column="file"), RUN, store)


def test_csvs_given_by_name_and_clashing_published_names(store, bucket, s3):
    refs = tasks.plan(params(bucket, csv_uris=["train_data.csv"]), RUN, store)
    assert json.loads(store.get(bucket, RUN_DIR + "plan.json"))["csv_uris"] == ["train_data.csv"] and refs
    s3.client().copy_object(Bucket=bucket, Key="raw/old/train_data.csv", CopySource=f"{bucket}/raw/train_data.csv")
    with pytest.raises(tasks.RunError, match="would both be published as s3://.*/out/train_face.csv"):
        tasks.plan(params(bucket, csv_uris=["train_data.csv", "old/train_data.csv"]), RUN, store)
