"""What the `review_gate` task asks a person, if anything (operators.ReviewGate asks it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from facecrop_ops.config.names import REVIEW_PAGE
from facecrop_ops.reporting import metrics
from facecrop_ops.s3io import S3Store
from facecrop_ops.spill import Spill
from facecrop_ops.tasks import tables
from facecrop_ops.tasks.context import run_context


def needs_review(params: Mapping[str, Any], run_id: str, store: S3Store) -> str:
    """With review_gate on, the message a person approves or rejects before the CSVs are
    published, when a class misses more faces than miss_rate_limits allows; "" otherwise (no
    gate, or every class within its limit). The run's review items are written first, so the
    Face review link shows what the person is asked about."""
    ctx = run_context(params, run_id, store)
    rp = ctx.params
    if not rp.review_gate or not rp.miss_rate_limits:
        return ""
    with Spill() as db:  # the rows and the review items, as publish reads and writes them
        per_class = tables.load_run(ctx, db, ctx.files.plan(ctx.folder))
    over = metrics.over_limits(metrics.as_json(per_class), rp.miss_rate_limits)
    if not over:
        return ""
    link = f"{REVIEW_PAGE}?{urlencode({'run_id': run_id})}"
    lines = "\n".join(f"- {line}" for line in over)
    return (f"Detection missed more faces than `miss_rate_limits` allows in run {run_id}:\n\n{lines}\n\n"
            f"Look at the doubtful crops and correct them in [Face review]({link}) (corrections apply from the next "
            "run). **Approve** publishes this run's CSVs as they are; **Reject** ends the run failed with nothing "
            "published.")
