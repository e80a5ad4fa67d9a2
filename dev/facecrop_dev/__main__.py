"""`python -m facecrop_dev samples DEST`: write the sample dataset to a folder or an S3 prefix.

docker-compose's init runs it (from the image's `seed` stage) to give MinIO a dataset the
DAG can crop right away; the demo and the tests build the same dataset in memory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from facecrop_dev import samples


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facecrop_dev", description=__doc__.split("\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    smp = sub.add_parser(
        "samples",
        allow_abbrev=False,
        help="write a sample dataset (portraits built from a real face) to a folder or S3",
        description="Write a small dataset in the real layout (train/images/<person>/<class>.jpg, "
        "eval/images/, train_data.csv, test_data.csv, some junk) to DEST. An s3:// DEST goes through "
        "an Airflow connection and is left alone when it already holds objects.",
    )
    smp.add_argument("dest", metavar="DEST", help="local folder or s3://bucket/prefix")
    smp.add_argument("--people", type=int, default=12, help="person folders, 7 photos each (default 12)")
    smp.add_argument("--eval", type=int, default=12, help="eval photos (default 12)")
    smp.add_argument("--aws-conn-id", default="aws_default", help="Airflow connection for an s3:// DEST")
    return parser


def write_samples(dest: str, people: int, n_eval: int, aws_conn_id: str) -> str:
    """Write the dataset; returns what was done, in one line."""
    files = samples.dataset(people, n_eval)
    if not dest.startswith("s3://"):
        root = Path(dest)
        for key, data in files:
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            (root / key).write_bytes(data)
        return f"sample dataset written to {root}"
    from facecrop_ops.dataset.locations import parse_s3_uri
    from facecrop_ops.s3io import client_for

    loc = parse_s3_uri(dest, "DEST")
    client = client_for(aws_conn_id, 8)
    try:  # not list_buckets: a user limited to its bucket (compose's MinIO user) may not list them all
        client.head_bucket(Bucket=loc.bucket)
    except Exception as exc:  # noqa: BLE001 - only a missing bucket is created
        if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        client.create_bucket(Bucket=loc.bucket)
    if client.list_objects_v2(Bucket=loc.bucket, Prefix=loc.prefix, MaxKeys=1).get("KeyCount"):
        return f"{loc.uri} already holds objects: left as it is"
    count = 0
    for key, data in files:
        client.put_object(Bucket=loc.bucket, Key=loc.key(key), Body=data)
        count += 1
    return f"sample dataset: {count} objects written to {loc.uri}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(write_samples(args.dest, args.people, args.eval, args.aws_conn_id))
    except ValueError as exc:
        print(f"facecrop_dev: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
