"""The knobs of a crop run as one typed value, with the reference notebook's values as defaults.

The CLI's options and the DAG's params are both read into `Settings`, so a value means the
same thing wherever it is set. Each field's default, bounds and help are declared once, in
`config.params.TABLE`; a bad value is refused before any photo is touched, with a message that
says how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Self

from facecrop_ops.config.params import ENGINES, FALLBACK_SIZES, FALLBACKS, INTERPOLATIONS, PARAMS, SETTINGS

__all__ = ["DEFAULTS", "ENGINES", "FALLBACKS", "FALLBACK_SIZES", "INTERPOLATIONS", "Settings", "SettingsError"]


class SettingsError(ValueError):
    """A setting a user gave is unusable; the message names each bad one and its fix."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


NOT_SHAPING = ("device", "workers", "max_megapixels", "max_photo_megabytes")
# Knobs added after runs were recorded: left at their default they shape faces as before, so
# they count in the fingerprint only when set (a default run's fingerprint, and the faces the
# next run may reuse, stay as they were).
ADDED_LATER = ("template_match", "template_min_score", "second_detector")


class _Settings:
    """The knobs of a crop (one field per crop setting of config.params.TABLE, in its order;
    see the table for what each does). Frozen: a run's settings never change under it."""

    @property
    def margins(self) -> tuple[int, int, int, int]:
        return (self.margin_left, self.margin_right, self.margin_top, self.margin_bottom)

    def problems(self) -> list[str]:
        """Each unusable value, with what to set instead (the table's rule and default)."""
        return [problem for spec in SETTINGS if (problem := spec.problem(getattr(self, spec.name)))]

    @property
    def rescues(self) -> bool:
        """Whether a miss may be cropped from anything but the centre box."""
        return self.uses_siblings or self.second_detector

    @property
    def uses_siblings(self) -> bool:
        """Whether a photo's crop may depend on the other photos of its person folder."""
        return self.fallback == "sibling" or self.second_pass or self.template_match

    def check(self, source: str = "setting") -> Self:
        """Raise one SettingsError listing every problem, or return self. `source` names where
        the values came from ("option", "param") in the message."""
        problems = self.problems()
        if problems:
            raise SettingsError(f"bad {source}: " + "; ".join(problems), problems)
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "setting") -> Self:
        """Build from a dict such as DAG params; unknown keys are refused, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            problem = f"unknown {source}: {', '.join(unknown)}; known ones are {', '.join(sorted(known))}"
            raise SettingsError(problem, [problem])
        kwargs = {name: PARAMS[name].coerce(value) for name, value in values.items()}
        kwargs = {name: tuple(v) if isinstance(v, list) else v for name, v in kwargs.items()}
        return cls(**kwargs).check(source)

    def as_dict(self) -> dict[str, Any]:
        """The knobs as plain JSON values (for manifests, reports and DAG params)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}

    def fingerprint(self) -> str:
        """A short hash of the knobs that shape the faces (not where or how fast they are
        computed: device and workers; nor the bound on a photo's size, whose refusals are
        tried again), to tell runs with different settings apart. A preset is expanded
        before Settings exist, so its effective knobs are what is hashed."""
        shaping = {k: v for k, v in self.as_dict().items()
                   if k not in NOT_SHAPING and not (k in ADDED_LATER and v == PARAMS[k].default)}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]


# One field per crop setting of the table: its name, the type the code holds it in, its default.
Settings = dataclasses.make_dataclass(
    "Settings", [(spec.name, spec.python_type, dataclasses.field(default=spec.code_default)) for spec in SETTINGS],
    bases=(_Settings,), frozen=True, namespace={"__module__": __name__})
Settings.__doc__ = _Settings.__doc__

DEFAULTS = Settings()
