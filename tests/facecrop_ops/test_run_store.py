"""facecrop's own objects through a real S3 API (moto's server): reviewers' decisions compacted
into a snapshot that reads stay independent of history with, corrections.csv appended without
gaps or doubles, and tables rebuilt until the listing is stable."""

from __future__ import annotations

import csv
import io
import threading
from datetime import datetime, timedelta, timezone

import pytest

from facecrop_dev.local_s3 import moto_server
from facecrop_ops.dataset import corrections
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.run_store import RunStore
from facecrop_ops.s3io import S3Store

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        yield server


@pytest.fixture()
def files(s3, request):
    bucket = "rs-" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    s3.client().create_bucket(Bucket=bucket)
    return RunStore(S3Store(s3.client(), threads=8), S3Location(bucket, "out/"))


def decision(i: int, minutes: float, photo: str | None = None, kind: str = "box"):
    at = (T0 + timedelta(minutes=minutes)).isoformat(timespec="milliseconds")
    box = [10, 10, 100 + i % 50, 120] if kind == "box" else None
    return corrections.make(photo or f"train/images/p{i:05d}/mask1.jpg", f"e{i}", kind, box, f"r{i % 3}", at,
                            f"{i:08x}", (384, 512))


def csv_ids(files):
    text = files.s3.get(files.dest.bucket, files.dest.corrections_csv).decode()
    return [row["id"] for row in csv.DictReader(io.StringIO(text))]


def test_compaction_folds_settled_decisions_and_reads_only_what_came_after(files):
    made = [decision(i, i) for i in range(40)] + [decision(40, 41, photo="train/images/p00001/mask1.jpg", kind="no_face")]
    for c in made:
        files.save_correction(c)
    everything = corrections.latest(made)
    # 35 minutes in, the 20 saved more than 15 minutes before (the grace) have settled.
    fold = files.compact(T0 + timedelta(minutes=35))
    assert fold.latest == everything and fold.decisions == 41
    snap = files.snapshot()
    assert snap.through == made[19].id + ".json" and snap.fold.decisions == 20
    assert files.decisions().latest == everything  # the snapshot and the 21 objects listed after it
    assert csv_ids(files) == [c.id for c in made]  # settled rows, then the young ones

    listed = []
    real_list = files.s3.list
    files.s3.list = lambda loc, what="", start_after="": listed.append(start_after) or real_list(loc, what, start_after)
    later = files.compact(T0 + timedelta(days=1))
    assert later.latest == everything and files.snapshot().through == made[-1].id + ".json"
    assert listed[0] == files.dest.corrections.key(made[19].id + ".json")  # history before it is not read again
    assert csv_ids(files) == [c.id for c in made]  # each once
    assert files.decisions().decisions == 41


def test_two_compactors_at_once_leave_every_decision_listed_once(files):
    made = [decision(i, i) for i in range(60)]
    for c in made[:30]:
        files.save_correction(c)
    files.compact(T0 + timedelta(minutes=20))
    for c in made[30:]:
        files.save_correction(c)
    threads = [threading.Thread(target=files.compact, args=(T0 + timedelta(minutes=m),)) for m in (40, 90)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files.compact(T0 + timedelta(days=1))
    assert files.decisions().latest == corrections.latest(made)
    assert csv_ids(files) == [c.id for c in made]


def test_objects_that_cannot_be_read_are_named_once_and_never_applied(files):
    good = decision(1, 0)
    files.save_correction(good)
    loc = files.dest.corrections
    for name, data in (("20261201T100100.000+0000-bad1", b"[]"), ("20261201T100200.000+0000-bad2", b'{"source": 3}'),
                       ("zzz-junk", b"null")):
        files.s3.put(loc.bucket, loc.key(name + ".json"), data, "application/json")
    fold = files.compact(T0 + timedelta(days=1))
    assert fold.latest == {good.source: good} and fold.unreadable_count == 3
    assert "3 decision object(s) could not be read" in fold.unreadable_note()
    again = files.compact(T0 + timedelta(days=2))  # named in the snapshot: not counted twice
    assert again.unreadable_count == 3 and files.decisions().unreadable_count == 3


def test_a_rebuild_checks_the_listing_after_its_last_write(files, caplog):
    loc = files.dest.dest.child("_facecrop/runs")
    rounds = []

    def render(found):
        rounds.append(len(found))
        files.s3.put_text(loc.bucket, loc.key(f"r{len(rounds)}/metrics.json"), "{}")  # another run lands meanwhile
        return "table", len(found)

    assert files.rebuild(files.run_metrics, files.dest.history, render, rounds=3) == 2
    assert rounds == [0, 1, 2] and "kept changing over 3 rounds" in caplog.text
