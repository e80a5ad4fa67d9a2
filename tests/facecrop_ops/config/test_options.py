"""Each param declared once: Settings' fields and the CLI's options come from the table, and a
test fails when one of them drifts from it."""

import dataclasses
from collections import Counter

from facecrop_ops.cli import build_parser, settings_from_args
from facecrop_ops.config.crop import Settings
from facecrop_ops.config.options import COMPOSITES, options
from facecrop_ops.config.params import SETTINGS


def test_settings_have_one_field_per_crop_setting_of_the_table_with_its_default():
    fields = dataclasses.fields(Settings)
    assert [f.name for f in fields] == [s.name for s in SETTINGS]
    assert [f.default for f in fields] == [s.code_default for s in SETTINGS]


def test_every_crop_setting_is_set_by_exactly_one_cli_option_and_the_parser_has_no_other():
    count = Counter(name for option in options() for name in option.params)
    assert set(count) == {s.name for s in SETTINGS} | {"preset"} and set(count.values()) == {1}
    crop = build_parser()._subparsers._group_actions[0].choices["crop"]
    flags = {flag for action in crop._actions for flag in action.option_strings}
    assert flags == {flag for option in options() for flag in option.flags} | {"-h", "--help", "--quiet"}


def _other_value(spec):
    """A valid value of the setting that is not its default."""
    schema, default = spec.schema, spec.code_default
    if "enum" in schema:
        return next(v for v in schema["enum"] if v != default)
    if spec.python_type is bool:
        return not default
    if spec.python_type is int:
        return default + 1 if schema.get("maximum") != default else default - 1
    if spec.python_type is float:
        return round(default * 0.9, 3)
    if spec.python_type is str:
        return "cpu"
    return tuple(round(v * 0.9, 3) for v in default)


def _text(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def test_each_option_sets_the_setting_it_names():
    composite = {name for option in COMPOSITES for name in option.params}
    for spec in SETTINGS:
        if spec.name in composite:
            continue
        value = _other_value(spec)
        (option,) = [o for o in options() if o.params == (spec.name,)]
        argv = [option.flags[0] if value else option.flags[1]] if spec.python_type is bool else [option.flags[0], _text(value)]
        settings = settings_from_args(build_parser().parse_args(["crop", "src", "dst", *argv]))
        assert getattr(settings, spec.name) == value, (argv, spec.name)
        assert dataclasses.replace(settings, **{spec.name: spec.code_default}) == Settings()


def test_composite_options_set_each_of_their_settings():
    args = build_parser().parse_args(["crop", "s", "d", "--margins", "1,2,3,4", "--output-size", "100x150",
                                      "--fallback-size", "300x400", "--select", "probability"])
    s = settings_from_args(args)
    assert (s.margins, s.output_width, s.output_height) == ((1, 2, 3, 4), 100, 150)
    assert (s.fallback_size, s.fallback_width, s.fallback_height, s.select_largest) == ("fixed", 300, 400, False)
    auto = settings_from_args(build_parser().parse_args(["crop", "s", "d", "--fallback-size", "auto"]))
    assert (auto.fallback_size, auto.fallback_width) == ("auto", Settings().fallback_width)
