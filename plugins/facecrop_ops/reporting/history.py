"""Miss rates across runs: one row per run and class, rebuilt from every run's metrics.json.

Each run's metrics.json is the record and history.csv is derived from all of them each
time, so a retried, cleared or concurrent run can only add or replace its own rows, never
lose another's. Pure: the caller lists and reads the metrics files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from facecrop_ops.dataset.naming import CLASSES, UNLABELED
from facecrop_ops.reporting.metrics import ALL

RUN_FIELDS = ["run_id", "run_after", "logical_date", "source_uri", "engine", "settings_fingerprint"]
COUNTS = ["images", "detected", "fallback", "rescued", "errors", "reused", "corrected"]
COLUMNS = [*RUN_FIELDS, "class", *COUNTS, "miss_rate"]
CLASS_ORDER = [*CLASSES, UNLABELED, ALL]


def frame(docs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """History rows from metrics.json documents ({"run": {...}, "classes": {...}}), oldest
    run first (by when it was due to run, then run id), classes in the dataset's order."""
    rows = [
        {**{k: doc["run"].get(k) for k in RUN_FIELDS}, "class": name, **{k: m.get(k, 0) for k in COUNTS}, "miss_rate": m.get("miss_rate")}
        for doc in docs
        for name, m in doc["classes"].items()
    ]
    df = pd.DataFrame(rows, columns=COLUMNS)
    order = {name: i for i, name in enumerate(CLASS_ORDER)}
    df["_class_order"] = df["class"].map(lambda c: order.get(c, len(order)))
    df = df.sort_values(["run_after", "run_id", "_class_order", "class"], kind="stable").drop(columns="_class_order")
    return df.astype({k: "int64" for k in COUNTS}).reset_index(drop=True)


def to_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n")


def runs(df: pd.DataFrame) -> list[str]:
    """Run ids, oldest first."""
    return list(dict.fromkeys(df["run_id"]))


def previous_run(df: pd.DataFrame, run_id: str) -> str | None:
    """The run just before `run_id` in the history, or None for the first."""
    order = runs(df)
    i = order.index(run_id) if run_id in order else len(order)
    return order[i - 1] if i > 0 else None


def miss_rates(df: pd.DataFrame, run_id: str) -> dict[str, float | None]:
    one = df[df["run_id"] == run_id]
    return {c: (None if pd.isna(r) else float(r)) for c, r in zip(one["class"], one["miss_rate"])}


def trend(df: pd.DataFrame) -> pd.DataFrame:
    """Miss rate per run (rows, oldest first) and class (columns, dataset order)."""
    table = df.pivot_table(index=["run_after", "run_id"], columns="class", values="miss_rate", aggfunc="first", sort=True)
    present = [c for c in CLASS_ORDER if c in table.columns] + sorted(set(table.columns) - set(CLASS_ORDER))
    return table[present]
