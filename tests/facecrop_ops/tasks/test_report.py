"""The `record_metrics` and `check_miss_rates` tasks: metrics, the history, the alert."""

import io
import json

from facecrop_ops import tasks
from facecrop_ops.config.crop import Settings
from facecrop_ops.dataset.run_folder import folder_name
from tests.facecrop_ops.tasks.helpers import RUN, finish_run


def test_miss_rate_limits_name_classes_rates_and_the_review_page():
    doc = {"run": {"run_id": RUN, "report": "s3://b/out/_facecrop/runs/r/report.html"},
           "classes": {"normal": {"miss_rate": 0.02}, "mask1": {"miss_rate": 0.5}, "all": {"miss_rate": 0.2}}}
    assert tasks.check_miss_rates(doc, {"all": 0.3, "normal": 0.05}) is None
    assert tasks.check_miss_rates(doc, {"mask1": 0.4, "masked": 0.1}) == (
        f"miss-rate limits exceeded in run {RUN}: mask1: miss rate 50.0% > limit 40.0%; "
        "masked: no such class in this run (classes: normal, mask1, all). "
        "Review page: s3://b/out/_facecrop/runs/r/report.html"
    )


def _history(store, bucket):
    import pandas as pd

    return pd.read_csv(io.BytesIO(store.get(bucket, "out/_facecrop/history.csv")))


def test_history_holds_each_run_once_through_clears_and_runs_finishing_meanwhile(store, bucket):
    first = "manual__2026-11-01T00:00:00+00:00"
    finish_run(store, bucket, first)
    finish_run(store, bucket, first)  # the run cleared and run again: replaced, not doubled
    assert _history(store, bucket).groupby("run_id").size().to_dict() == {first: 9}  # 8 classes and all

    # Another run's metrics land while this run rebuilds the history (after its first listing).
    other = "manual__2026-11-03T00:00:00+00:00"
    other_doc = json.loads(store.get(bucket, f"out/_facecrop/runs/{folder_name(first)}/metrics.json"))
    other_doc["run"]["run_id"], other_doc["run"]["run_after"] = other, "2026-11-03T00:00:00+00:00"
    listing, calls = store.list, []

    def list_then_other_finishes(*args, **kwargs):
        keys = listing(*args, **kwargs)
        if not calls:
            store.put_text(bucket, "out/_facecrop/runs/other/metrics.json", json.dumps(other_doc))
        calls.append(1)
        return keys

    store.list = list_then_other_finishes
    second = "manual__2026-11-02T00:00:00+00:00"
    doc = finish_run(store, bucket, second, min_face_size=40)
    past = _history(store, bucket)
    assert list(dict.fromkeys(past["run_id"])) == [first, second, other]
    assert set(past[past["run_id"] == second]["settings_fingerprint"]) == {doc["run"]["settings_fingerprint"]}
    assert doc["run"]["settings_fingerprint"] != Settings().fingerprint()
    report = store.get(bucket, doc["run"]["report"].split(f"s3://{bucket}/")[1]).decode()
    assert f"this run and the previous one ({first})" in report and "Trend over the history" in report
