"""The DAG's params, read and checked in one place before a run touches any data.

`parse` turns the trigger form's values into typed locations and Settings, and collects
every problem into one ParamsError whose message says how to fix each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from facecrop_ops.config.crop import DEFAULTS, Settings, SettingsError
from facecrop_ops.dataset.locations import S3Location, parse_s3_uri
from facecrop_ops.dataset.planning import MAX_SHARDS_LIMIT

# Params that are not crop/detection Settings.
RUN_KEYS = (
    "source_uri", "dest_uri", "csv_uris", "path_column", "aws_conn_id",
    "photos_per_shard", "max_shards", "miss_rate_limits", "full_recrop",
)
SETTING_KEYS = tuple(k for k in DEFAULTS.as_dict() if k not in ("device", "workers"))


class ParamsError(ValueError):
    """Bad params: the run stops before touching data. The message lists every fix."""


@dataclass(frozen=True)
class RunParams:
    source: S3Location
    dest: S3Location
    csv_uris: tuple[str, ...]  # empty: every *.csv directly under the source root
    path_column: str
    aws_conn_id: str
    photos_per_shard: int
    max_shards: int
    settings: Settings
    miss_rate_limits: dict[str, float] = field(default_factory=dict)
    full_recrop: bool = False  # crop every photo again, ignoring the last run's faces


def parse(params: Mapping[str, Any]) -> RunParams:
    problems = []

    def take(fn, *args):
        try:
            return fn(*args)
        except ValueError as exc:
            problems.append(str(exc))
            return None

    source = take(parse_s3_uri, params.get("source_uri") or "", "source_uri")
    dest_uri = params.get("dest_uri") or params.get("source_uri") or ""
    dest = take(parse_s3_uri, dest_uri, "dest_uri")
    csv_uris = tuple(params.get("csv_uris") or ())
    for uri in csv_uris:
        if not isinstance(uri, str) or not uri.strip().lower().endswith(".csv"):
            problems.append(f"csv_uris entry {uri!r} must name a .csv object (an s3:// URI or a name under source_uri)")
        elif uri.startswith("s3://"):
            take(parse_s3_uri, uri, "each of csv_uris")
        elif uri.startswith("/") or ".." in uri.split("/") or "://" in uri:
            problems.append(f"csv_uris entry {uri!r} must be an s3:// URI or a name under source_uri such as labels/train.csv")
    path_column = params.get("path_column", "path")
    if not isinstance(path_column, str) or not path_column:
        problems.append("path_column must be the name of the CSV column holding photo paths (default 'path')")
    aws_conn_id = params.get("aws_conn_id") or "aws_default"
    per_shard = params.get("photos_per_shard", 500)
    max_shards = params.get("max_shards", 256)
    if not isinstance(per_shard, int) or per_shard < 1:
        problems.append(f"photos_per_shard must be an integer >= 1 (got {per_shard!r}, default 500)")
    if not isinstance(max_shards, int) or not 1 <= max_shards <= MAX_SHARDS_LIMIT:
        problems.append(f"max_shards must be an integer 1..{MAX_SHARDS_LIMIT} (got {max_shards!r}, default 256)")
    limits = params.get("miss_rate_limits") or {}
    if not isinstance(limits, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in limits.values()
    ):
        problems.append('miss_rate_limits must map class names to rates 0..1, e.g. {"all": 0.3, "normal": 0.05}')
    full_recrop = params.get("full_recrop", False)
    if not isinstance(full_recrop, bool):
        problems.append(f"full_recrop must be true or false (got {full_recrop!r}, default false)")
    if source and dest and source.bucket == dest.bucket and _overlaps_images(source, dest):
        problems.append("dest_uri must not lie inside an images folder of source_uri (raw photos are never touched)")
    settings = None
    try:
        settings = Settings.from_mapping({k: params[k] for k in SETTING_KEYS if k in params}, source="param")
    except SettingsError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ParamsError("bad params: " + "; ".join(problems))
    return RunParams(source, dest, csv_uris, path_column, aws_conn_id, per_shard, max_shards, settings, dict(limits), full_recrop)


def _overlaps_images(source: S3Location, dest: S3Location) -> bool:
    if not dest.prefix.startswith(source.prefix):
        return False
    return "images" in dest.prefix[len(source.prefix) :].split("/")
