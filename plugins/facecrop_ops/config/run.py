"""The DAG's params, read and checked in one place before a run touches any data.

`parse` turns the trigger form's values into typed locations and Settings, and collects
every problem into one ParamsError whose message says how to fix each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from facecrop_ops.config.crop import Settings
from facecrop_ops.config.params import FORM_PARAMS, canonical_encoding, closest, expand_preset
from facecrop_ops.dataset.locations import S3Location, parse_s3_uri


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
    csv_encoding: str = "utf-8"  # of the CSVs read, and of those published
    review_gate: bool = False  # over miss_rate_limits, wait for a person's approval before publishing


def parse(params: Mapping[str, Any]) -> RunParams:
    """Every value is judged by its param's JSON schema in config.params, as the trigger form
    judges it; a param left out (or null where the form allows it) takes its default. Then
    `preset` is expanded into the params it sets (config.params.expand_preset: the form sends
    every field, so a param at its default takes the preset's value, and one set to another
    value than the preset's is refused)."""
    problems, values = [], {}
    known = [spec.name for spec in FORM_PARAMS]
    for name in sorted(set(params) - set(known)):
        problems.append(f"unknown param {name!r}{closest(name, known)}: it would be ignored; the trigger form lists "
                        "every param")
    for spec in FORM_PARAMS:
        value = params.get(spec.name, spec.default)
        problem = spec.problem(value)
        if problem:
            problems.append(problem)
        values[spec.name] = spec.coerce(value)
    source = dest = settings = None
    if not problems:
        values["csv_encoding"] = canonical_encoding(values["csv_encoding"])
        values, problems = expand_preset(values["preset"], values)
    if not problems:
        source = parse_s3_uri(values["source_uri"], "source_uri")
        dest = parse_s3_uri(values["dest_uri"], "dest_uri") if values["dest_uri"] else source
        if source.bucket == dest.bucket and _overlaps_images(source, dest):
            problems.append("dest_uri must not lie inside an images folder of source_uri (raw photos are never touched)")
        settings = Settings.from_mapping({spec.name: values[spec.name] for spec in FORM_PARAMS if spec.setting}, source="param")
    if problems:
        raise ParamsError("bad params: " + "; ".join(problems))
    return RunParams(source, dest, tuple(values["csv_uris"] or ()), values["path_column"], values["aws_conn_id"],
                     values["photos_per_shard"], values["max_shards"], settings, dict(values["miss_rate_limits"]),
                     values["full_recrop"], values["csv_encoding"], values["review_gate"])


def _overlaps_images(source: S3Location, dest: S3Location) -> bool:
    if not dest.prefix.startswith(source.prefix):
        return False
    return "images" in dest.prefix[len(source.prefix) :].split("/")
