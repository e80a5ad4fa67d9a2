"""One table of run params: the trigger form and the run's parser accept and refuse the same
values, at every bound and every choice of every param."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.definitions.param import ParamValidationError

from facecrop_ops.config import form
from facecrop_ops.config.params import FORM_PARAMS, PARAMS, Spec
from facecrop_ops.config.run import ParamsError, parse

BASE = {"source_uri": "s3://data/raw"}


def probes(spec: Spec) -> list[Any]:
    """Values on and around each bound and choice of the param, and of the wrong type."""
    s = spec.schema
    types = [s["type"]] if isinstance(s["type"], str) else s["type"]
    values: list[Any] = [spec.default, None, True, "x", 3, [], {}]
    if "enum" in s:
        values += [*s["enum"], s["enum"][0].upper(), s["enum"][0] + " "]
    if "integer" in types or "number" in types:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in s:
                bound = s[key]
                values += [bound, bound - 1, bound + 1, bound - 0.001, bound + 0.001, float(bound)]
        values += [2.5, 7.0, -1, 10**6, "5"]
    if "array" in types:
        items = s["items"]
        if items.get("type") == "number":
            values += [[0.5, 0.5, 0.5], [0.0, 0.5, 0.5], [1.0, 0.5, 0.5], [0.001, 0.5, 0.999], [0.5, 0.5],
                       [0.5, 0.5, 0.5, 0.5], ["0.5", 0.5, 0.5], [True, 0.5, 0.5]]
        else:
            values += [["train.csv"], ["labels/extra.csv"], ["s3://other/x.csv"], ["s3://other/X.CSV"], ["x.txt"],
                       ["/abs/x.csv"], ["../up.csv"], ["a/../b.csv"], ["http://h/x.csv"], ["s3://b/"], [3], ["..csv"]]
    if "object" in types:
        values += [{"all": 0.3}, {"normal": 0}, {"normal": 1}, {"all": 1.01}, {"all": -0.1}, {"all": "0.3"}, {"all": True}]
    if "string" in types and "enum" not in s:
        values += ["", " ", "s3://data/raw", "s3://data", "s3://Data/raw", "s3://d/raw", "s3://" + "a" * 63,
                   "s3://" + "a" * 64, "data/raw", "s3://data/raw\n", "cuda:1", "cpu", "gpu"]
    return values


def form_accepts(param: Any, value: Any) -> bool:
    try:
        param.resolve(value)
    except ParamValidationError:
        return False
    return True


def parse_accepts(name: str, value: Any) -> bool:
    try:
        parse({**BASE, name: value})
    except ParamsError:
        return False
    return True


@pytest.mark.parametrize("spec", FORM_PARAMS, ids=lambda s: s.name)
def test_the_form_and_the_parser_agree_at_every_bound_and_choice(spec):
    param = form.build()[spec.name]
    checked = {True: 0, False: 0}
    for value in probes(spec):
        expected = form_accepts(param, value)
        assert parse_accepts(spec.name, value) == expected, (spec.name, value, expected)
        checked[expected] += 1
    assert checked[True] and checked[False], checked  # each param was seen accepting and refusing


def test_every_param_of_the_table_is_in_the_form_once_with_its_title_section_and_help():
    params = form.build()
    assert list(params) == [spec.name for spec in FORM_PARAMS]
    for spec in FORM_PARAMS:
        schema = params[spec.name].schema
        assert schema["title"] == spec.title and params[spec.name].description == spec.help
        assert schema.get("section") == spec.section
    assert {"device", "workers"}.isdisjoint(params)  # the worker decides where detection runs


def test_a_refusal_names_the_param_its_rule_and_its_default():
    with pytest.raises(ParamsError) as err:
        parse({**BASE, "jpeg_quality": 101, "fallback": "guess", "second_pass_min_iou": 0})
    text = str(err.value)
    assert "jpeg_quality=101 is invalid: it must be an integer 1..100 (default 95)" in text
    assert "fallback='guess' is invalid: it must be one of centre, sibling (default 'centre')" in text
    assert "second_pass_min_iou=0 is invalid: it must be a number above 0, at most 1 (default 0.5)" in text


def test_integral_numbers_given_for_integers_become_integers():
    rp = parse({**BASE, "min_face_size": 40.0, "photos_per_shard": 100.0})
    assert rp.settings.min_face_size == 40 and type(rp.settings.min_face_size) is int
    assert rp.photos_per_shard == 100 and type(rp.photos_per_shard) is int


def test_crop_settings_defaults_come_from_the_table():
    from facecrop_ops.config.crop import DEFAULTS

    for spec in FORM_PARAMS:
        if spec.setting:
            value = getattr(DEFAULTS, spec.name)
            assert (list(value) if isinstance(value, tuple) else value) == spec.default, spec.name
    assert PARAMS["device"].default == DEFAULTS.device == "auto"
