import pandas as pd
import pytest

from facecrop_ops.reporting import history


def doc(run_id, run_after, rates, fingerprint="abc"):
    missed = {name: round((r or 0) * 10) for name, r in rates.items()}
    classes = {name: {"images": 10, "detected": 10 - missed[name], "fallback": missed[name], "errors": 0, "miss_rate": r}
               for name, r in rates.items()}
    return {"run": {"run_id": run_id, "run_after": run_after, "logical_date": None, "source_uri": "s3://b/raw/",
                    "engine": "fast", "settings_fingerprint": fingerprint}, "classes": classes}


@pytest.fixture()
def past():
    # Given out of order, as a bucket listing returns them.
    return history.frame([
        doc("manual__b", "2026-11-02T00:00:00+00:00", {"all": 0.2, "normal": 0.0, "mask1": 0.4}),
        doc("scheduled__a", "2026-11-01T00:00:00+00:00", {"mask1": 0.5, "all": 0.3, "normal": 0.1}, fingerprint="old"),
    ])


def test_one_row_per_run_and_class_oldest_run_first_classes_in_dataset_order(past):
    assert list(past.columns) == history.COLUMNS
    assert list(zip(past["run_id"], past["class"])) == [
        ("scheduled__a", "mask1"), ("scheduled__a", "normal"), ("scheduled__a", "all"),
        ("manual__b", "mask1"), ("manual__b", "normal"), ("manual__b", "all"),
    ]
    assert past["images"].dtype == "int64" and past.loc[0, "settings_fingerprint"] == "old"


def test_csv_round_trip_keeps_every_value(past):
    again = pd.read_csv(__import__("io").StringIO(history.to_csv(past)))
    assert again.drop(columns="logical_date").equals(past.drop(columns="logical_date"))


def test_previous_run_and_its_rates(past):
    assert history.runs(past) == ["scheduled__a", "manual__b"]
    assert history.previous_run(past, "manual__b") == "scheduled__a"
    assert history.previous_run(past, "scheduled__a") is None
    assert history.previous_run(past, "not-yet-in-history") == "manual__b"
    assert history.miss_rates(past, "scheduled__a") == {"mask1": 0.5, "normal": 0.1, "all": 0.3}


def test_trend_is_runs_by_classes(past):
    t = history.trend(past)
    assert list(t.columns) == ["mask1", "normal", "all"]
    assert [run for _, run in t.index] == ["scheduled__a", "manual__b"]
    assert t["mask1"].tolist() == [0.5, 0.4]


def test_a_class_without_readable_photos_has_no_rate():
    past = history.frame([doc("r", "2026-11-01T00:00:00+00:00", {"all": None})])
    assert history.miss_rates(past, "r") == {"all": None}
