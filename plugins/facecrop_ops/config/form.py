"""The trigger form: one Airflow Param per entry of config.params.TABLE, in its order.

The schema each Param validates with is the table's, the same one `config.run.parse` judges
values by in the plan task (which also covers `airflow dags test --conf` and the REST API).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from facecrop_ops.config import deployment
from facecrop_ops.config.params import FORM_PARAMS, Spec


def _param(spec: Spec) -> Param:
    default: Any = spec.default
    if spec.name == "source_uri" and deployment.SOURCE_URI:
        default = deployment.SOURCE_URI  # scheduled runs crop this one
    extra: dict[str, Any] = {"section": spec.section} if spec.section else {}
    if default is None and "null" not in spec.schema.get("type", ()):
        return Param(**spec.schema, title=spec.title, description=spec.help, **extra)  # required: no default
    return Param(default, **spec.schema, title=spec.title, description=spec.help, **extra)


def build() -> dict[str, Param]:
    return {spec.name: _param(spec) for spec in FORM_PARAMS}
