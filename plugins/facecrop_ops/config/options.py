"""The `facecrop crop` command line's options, derived from `config.params.TABLE`.

Each crop setting is one option named after it (`min_face_size` -> `--min-face-size`), typed,
bounded and explained by its table entry; a boolean has a `--no-` form. A few settings read
better as one option and are declared here, by the params they set: `--margins L,R,T,B`,
`--output-size WxH`, `--fallback-size auto|WxH` and `--select largest|probability`. Values are
judged afterwards by the same JSON schema as the DAG's params (`Settings.from_mapping`).
Pure: no argparse here, so the configuration reference is generated from the same list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facecrop_ops.config.params import PARAMS, SETTINGS, Spec


@dataclass(frozen=True)
class Option:
    """One command-line option: its flag(s), the params it sets and how its text becomes their
    values (None: a boolean flag, its `--no-` form setting False)."""

    flags: tuple[str, ...]
    params: tuple[str, ...]
    help: str
    section: str | None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], dict[str, Any]] | None = None


def _numbers(text: str, count: int | None, sep: str, kind: type) -> tuple[Any, ...]:
    parts = text.lower().split(sep)
    try:
        if count is not None and len(parts) != count:
            raise ValueError
        return tuple(kind(p) for p in parts)
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise ValueError(f"expected {count or 'some'} {noun} separated by '{sep}', got {text!r}") from None


def _fallback_size(text: str) -> dict[str, Any]:
    if text.strip().lower() == "auto":
        return {"fallback_size": "auto"}
    width, height = _numbers(text, 2, "x", int)
    return {"fallback_size": "fixed", "fallback_width": width, "fallback_height": height}


def _default_text(*names: str) -> str:
    values = [PARAMS[n].default for n in names]
    return ",".join(map(str, values)) if len(values) > 1 else str(values[0])


# Settings set together by one option; the rest get one option each.
COMPOSITES = (
    Option(("--margins",), ("margin_left", "margin_right", "margin_top", "margin_bottom"),
           "padding around the face box, left, right, top, bottom in px (default "
           f"{_default_text('margin_left', 'margin_right', 'margin_top', 'margin_bottom')}): the top keeps the hair",
           PARAMS["margin_left"].section, "L,R,T,B",
           parse=lambda t: dict(zip(("margin_left", "margin_right", "margin_top", "margin_bottom"), _numbers(t, 4, ",", int)))),
    Option(("--output-size",), ("output_width", "output_height"),
           f"size of every face (default {PARAMS['output_width'].default}x{PARAMS['output_height'].default})",
           PARAMS["output_width"].section, "WxH",
           parse=lambda t: dict(zip(("output_width", "output_height"), _numbers(t, 2, "x", int)))),
    Option(("--fallback-size",), ("fallback_size", "fallback_width", "fallback_height"),
           f"centre crop when no face is found: WxH, or auto: {PARAMS['fallback_size'].help.split('auto: ', 1)[-1]} "
           f"(default {PARAMS['fallback_width'].default}x{PARAMS['fallback_height'].default})",
           PARAMS["fallback_size"].section, "auto|WxH", parse=_fallback_size),
    Option(("--select",), ("select_largest",),
           "which face to crop when there are several: the largest or the most probable (default largest)",
           PARAMS["select_largest"].section, choices=("largest", "probability"),
           parse=lambda t: {"select_largest": t == "largest"}),
)


def _flag(spec: Spec) -> str:
    return "--" + spec.name.replace("_", "-")


def _single(spec: Spec) -> Option:
    """A setting's own option, from its schema: a choice, a flag, a number or a triple."""
    default = spec.default
    text = ",".join(map(str, default)) if isinstance(default, list) else str(default).lower() if isinstance(default, bool) else default
    help_text = f"{spec.help.rstrip('.')} (default {text})"
    schema, name = spec.schema, spec.name
    if "enum" in schema:
        return Option((_flag(spec),), (name,), help_text, spec.section, choices=tuple(schema["enum"]),
                      parse=lambda t: {name: t})
    kind = spec.python_type
    if kind is bool:
        return Option((_flag(spec), "--no-" + _flag(spec)[2:]), (name,), help_text, spec.section)
    if kind in (int, float):
        return Option((_flag(spec),), (name,), help_text, spec.section, "N" if kind is int else "X",
                      parse=lambda t: {name: _numbers(t, 1, ",", kind)[0]})
    if kind is str:
        return Option((_flag(spec),), (name,), help_text, spec.section, name.upper(), parse=lambda t: {name: t})
    return Option((_flag(spec),), (name,), help_text, spec.section, "P,R,O",
                  parse=lambda t: {name: _numbers(t, None, ",", float)})


def options() -> list[Option]:
    """Every option of `facecrop crop` that sets a param: `--preset`, then the crop settings in
    the table's order (a composite where its first setting is)."""
    preset = PARAMS["preset"]
    out = [Option(("--preset",), ("preset",), f"{preset.help.rstrip('.')} (default {preset.default})", None,
                  choices=tuple(preset.schema["enum"]), parse=lambda t: {"preset": t})]
    composite_of = {name: option for option in COMPOSITES for name in option.params}
    for spec in SETTINGS:
        option = composite_of.get(spec.name) or _single(spec)
        if option not in out:
            out.append(option)
    return out
