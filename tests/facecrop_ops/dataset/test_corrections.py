import json

import pytest

from facecrop_ops.dataset import corrections
from facecrop_ops.dataset.corrections import CorrectionError, make


def test_a_box_must_be_four_numbers_of_a_real_box_inside_the_photo():
    good = make("p/mask1.jpg", "e1", "box", [10, 20, 110, 150], "ann", "2026-12-01T10:00:00.000+00:00", "ab", (384, 512))
    assert good.box == (10.0, 20.0, 110.0, 150.0) and good.id == "20261201T100000.000+0000-ab"
    for box, why in (([1, 2, 3], "four numbers"), ([10, 10, 10, 50], "is empty"), ([0, 0, 400, 50], "leaves the 384x512 photo"),
                     (None, "four numbers"), ([True, 0, 5, 5], "four numbers")):
        with pytest.raises(CorrectionError, match=why):
            make("p", "e", "box", box, "ann", "t", "n", (384, 512))
    with pytest.raises(CorrectionError, match="decision must be one of accept, box, no_face"):
        make("p", "e", "delete", None, "ann", "t", "n")
    assert make("p", "e", "no_face", [1, 2, 3, 4], "ann", "t", "n").box is None  # a box means nothing there


def test_the_last_decision_counts_and_applies_only_to_the_photo_it_was_made_on():
    first = make("a.jpg", "e1", "box", [1, 1, 50, 50], "ann", "2026-12-01T10:00:00+00:00", "1")
    later = make("a.jpg", "e1", "no_face", None, "bob", "2026-12-01T11:00:00+00:00", "2")
    other = make("b.jpg", "old", "box", [1, 1, 50, 50], "ann", "2026-12-01T10:00:00+00:00", "3")
    fine = make("c.jpg", "e3", "accept", None, "ann", "2026-12-01T10:00:00+00:00", "4")
    latest = corrections.latest([later, other, first, fine])
    assert latest["a.jpg"] == later
    active, stale = corrections.applicable(latest, {"a.jpg": "e1", "b.jpg": "new", "c.jpg": "e3"})
    assert active == {"a.jpg": later} and stale == [other]  # accepting a crop changes nothing


def test_records_round_trip_and_the_csv_keeps_formulas_as_text():
    c = make("=a.jpg", "e1", "box", [1.5, 2, 50, 60], "=cmd", "2026-12-01T10:00:00+00:00", "x")
    assert corrections.Correction.from_json(c.to_json()) == c
    lines = corrections.to_csv([c]).splitlines()
    assert lines[0] == "source,etag,decision,x1,y1,x2,y2,reviewer,time,id"
    assert lines[1] == "'=a.jpg,e1,box,1.5,2.0,50.0,60.0,'=cmd,2026-12-01T10:00:00+00:00,20261201T100000+0000-x"


def test_crop_is_right_never_undoes_a_box_or_an_exclusion_but_reset_does():
    box = make("a.jpg", "e1", "box", [1, 1, 50, 50], "ann", "2026-12-01T10:00:00+00:00", "1")
    fine = make("a.jpg", "e1", "accept", None, "bob", "2026-12-01T11:00:00+00:00", "2")
    assert corrections.latest([box, fine])["a.jpg"] == box  # "the crop is right" said of the reviewer's crop
    undo = make("a.jpg", "e1", "reset", None, "bob", "2026-12-01T12:00:00+00:00", "3")
    assert corrections.latest([box, fine, undo])["a.jpg"] == undo
    assert corrections.applicable(corrections.latest([box, undo]), {"a.jpg": "e1"}) == ({}, [])
    gone = make("gone.jpg", "e9", "box", [1, 1, 50, 50], "ann", "2026-12-01T10:00:00+00:00", "4")
    assert corrections.applicable({"gone.jpg": gone}, {}) == ({}, [])  # went with its photo: not stale


def test_boxes_that_are_not_finite_numbers_are_refused():
    for box in ([float("nan"), 1, 50, 50], [1, 1, float("inf"), 50]):
        with pytest.raises(CorrectionError, match="not four finite numbers"):
            make("a.jpg", "e", "box", box, "ann", "t", "n", (384, 512))


GOOD = make("a.jpg", "e1", "box", [1, 1, 50, 50], "ann", "2026-12-01T10:00:00+00:00", "1", (384, 512))


def _with(**changes):
    doc = json.loads(GOOD.to_json())
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(("data", "why"), [
    ("[]", "not a JSON object but list"), ("null", "not a JSON object but NoneType"), ('"box"', "not a JSON object but str"),
    ("3", "not a JSON object but int"), ("{not json", "not JSON"), (b"\xff\xfe", "not JSON"),
    (_with(box=[1, 1, 50, 50, 60]), "four numbers"), (_with(box=[]), "four numbers"), (_with(box={}), "four numbers"),
    (_with(box=None), "four numbers"), (_with(box=[True, True, 300, 400]), "four numbers"),
    (_with(box=[1, 1, 500, 50]), "leaves the 384x512 photo"), (_with(box=[-5, 1, 50, 50]), "leaves"),
    (_with(time=12), "time must be non-empty text"), (_with(id=None), "id must be non-empty text"),
    (_with(source=["a"]), "source must be non-empty text"), (_with(reviewer={"x": 1}), "reviewer must be non-empty text"),
    (_with(time="yesterday"), "is not ISO 8601"), (_with(decision="delete"), "unknown decision"),
    (_with(size=[384]), "size must be"), (_with(id="other"), "its id 'other' is not its name"),
])
def test_every_stored_object_is_checked_whole(data, why):
    with pytest.raises(CorrectionError, match=why):
        corrections.parse(data, GOOD.id)


def test_a_fold_applies_what_it_can_read_and_names_the_rest():
    fold = corrections.DecisionFold()
    fold.add_object(f"out/_facecrop/corrections/{GOOD.id}.json", GOOD.to_json().encode())
    fold.add_object("out/_facecrop/corrections/bad.json", b"[]")
    assert fold.latest == {"a.jpg": GOOD} and fold.decisions == 1 and fold.unreadable_count == 1
    assert fold.unreadable_note().startswith("1 decision object(s) could not be read and were skipped: "
                                             "out/_facecrop/corrections/bad.json (not a JSON object but list)")


def test_a_snapshot_round_trips_and_names_settle_only_after_the_grace():
    fold = corrections.DecisionFold()
    fold.add(GOOD)
    fold.refuse("k", "why")
    snap = corrections.Snapshot(GOOD.id + ".json", fold)
    assert corrections.Snapshot.from_json(snap.to_json()) == snap
    from datetime import datetime, timedelta, timezone

    now = datetime(2026, 12, 1, 10, 30, tzinfo=timezone.utc)
    assert GOOD.id < corrections.settled_before(now)  # saved 30 minutes before
    assert GOOD.id > corrections.settled_before(now - timedelta(minutes=20))  # 10 minutes before: not yet
    assert "zzz" > corrections.settled_before(now)  # a name that is no time never settles
