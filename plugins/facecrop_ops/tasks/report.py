"""The `record_metrics` and `check_miss_rates` tasks: what people watch, from the run's manifest."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.reporting import metrics, report
from facecrop_ops.s3io import S3Store
from facecrop_ops.tasks.context import RunContext, run_context

log = logging.getLogger(__name__)


def record_metrics(
    params: Mapping[str, Any], run_id: str, store: S3Store, *, run_after: datetime | None = None,
    logical_date: datetime | None = None,
) -> dict[str, Any]:
    """Per-class metrics from the run's manifest to metrics.json, the history, the review page,
    the task log and Airflow metrics. Returns metrics.json's document."""
    from facecrop_ops.reporting import history  # pandas and matplotlib load here, not in every task

    ctx = run_context(params, run_id, store)
    rp, folder = ctx.params, ctx.folder
    shown = report.SheetRows()
    per_class = metrics.per_class(_feeding(ctx.files.stream_rows(folder.bucket, folder.manifest), shown))
    doc = {
        "run": {
            "run_id": run_id, "run_after": _iso(run_after), "logical_date": _iso(logical_date), "source_uri": rp.source.uri,
            "dest_uri": rp.dest.uri, "engine": rp.settings.engine, "settings_fingerprint": rp.settings.fingerprint(),
            "report": folder.uri_of(folder.report),
        },
        "classes": metrics.as_json(per_class),
    }
    store.put_text(folder.bucket, folder.metrics, json.dumps(doc, indent=2), "application/json")
    past = _rebuild_history(ctx)
    store.put_text(folder.bucket, folder.report, _report(ctx, doc, shown.sheets(), past), "text/html")
    log.info("detection per class (metrics in %s):\n%s", folder.uri_of(folder.metrics), metrics.table(per_class))
    log.info("review page: %s; history of %d run(s): %s", folder.uri_of(folder.report), len(history.runs(past)),
             ctx.files.dest.uri_of(ctx.files.dest.history))
    from airflow.sdk.observability.stats import Stats  # a no-op unless StatsD/OTel metrics are on

    for name, value in metrics.gauges(doc["classes"]).items():
        Stats.gauge(name, value)
    return doc


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _rebuild_history(ctx: RunContext) -> Any:
    """history.csv from every run's metrics.json under dest (rebuilt, so a retried, cleared or
    concurrent run can only add or replace its own rows)."""
    from facecrop_ops.reporting import history

    def render(found: list[tuple[str, bytes]]) -> tuple[str, Any]:
        docs = []
        for key, data in found:
            doc = json.loads(data)
            if "classes" not in doc:
                log.warning("history: skipping %s (older format)", key)
                continue
            docs.append(doc)
        past = history.frame(docs)
        return history.to_csv(past), past

    dest = ctx.files.dest
    past = ctx.files.rebuild(ctx.files.run_metrics, dest.history, render)
    return history.frame([]) if past is None else past


def _feeding(rows: Iterator[ManifestRow], shown: report.SheetRows) -> Iterator[ManifestRow]:
    for row in rows:
        shown.add(row)
        yield row


def _report(ctx: RunContext, doc: Mapping[str, Any], sheets: list[report.Sheet], past: Any) -> str:
    from facecrop_ops.reporting import history
    from facecrop_ops.vision.imaging import BadPhoto, thumbnail

    rp = ctx.params
    wanted = {rp.dest.key(r.output): r.source for sheet in sheets for r in sheet.rows if r.output}
    thumbs = {}
    for key, data in ctx.s3.get_many(rp.dest.bucket, list(wanted)):
        try:
            if data is not None:
                thumbs[wanted[key]] = thumbnail(data, report.THUMB_WIDTH)
        except BadPhoto:
            pass  # the tile shows its label alone
    previous = history.previous_run(past, doc["run"]["run_id"])
    current = {name: m["miss_rate"] for name, m in doc["classes"].items()}
    bar = report.bar_chart(current, history.miss_rates(past, previous) if previous else None)
    trend = report.trend_chart(history.trend(past)) if len(history.runs(past)) > 1 else None
    plan = ctx.files.plan(ctx.folder)
    stale = [asdict(s) for s in plan.stale_corrections]
    stale_count = len(stale) if plan.stale_count is None else plan.stale_count
    return report.render(doc["run"], doc["classes"], bar, trend, previous, sheets, thumbs, stale, stale_count)


def check_miss_rates(doc: Mapping[str, Any], limits: Mapping[str, float]) -> str | None:
    """The alert for a run with classes over their limit (naming classes, rates and the review
    page), or None when all is well."""
    over = metrics.over_limits(doc["classes"], limits)
    if not over:
        return None
    return f"miss-rate limits exceeded in run {doc['run']['run_id']}: {'; '.join(over)}. Review page: {doc['run']['report']}"
