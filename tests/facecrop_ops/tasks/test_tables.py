"""The control plane's tables: what the listing walks, and how a CSV row finds its photo's row."""

import unicodedata

from facecrop_ops.dataset.codes import Status
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.spill import Spill
from facecrop_ops.tasks import tables


def test_the_walk_lists_photos_and_root_files_but_never_faces_or_facecrops_own_folder(s3, store):
    s3.upload("walk", "raw/", [("train.csv", b"x"), ("train/images/p1/mask1.jpg", b"1"), ("train/notes.txt", b"n"),
                               ("train/faces/p1/mask1.jpg", b"f"), ("_facecrop/runs/r/manifest.csv", b"m"),
                               ("eval/images/a.jpg", b"a"), ("eval/images/faces/x.jpg", b"nested")])
    keys = [o.key for o in tables.walk(store, S3Location("walk", "raw/"))]
    assert keys == ["raw/train.csv", "raw/eval/images/a.jpg", "raw/eval/images/faces/x.jpg",
                    "raw/train/images/p1/mask1.jpg"]


def test_a_very_wide_folder_listed_whole_yields_exactly_what_walking_it_would(s3, store, monkeypatch):
    s3.upload("wide", "raw/", [(f"all/d{i}/images/p/mask1.jpg", b"1") for i in range(4)]
              + [("all/d0/faces/p/mask1.jpg", b"f"), ("all/d1/images/faces/x.jpg", b"nested"),
                 ("all/d2/_facecrop/runs/r/manifest.csv", b"m"), ("all/d3/notes.txt", b"n")])
    walked = [o.key for o in tables.walk(store, S3Location("wide", "raw/"))]
    monkeypatch.setattr(tables, "WIDE", 2)
    listed = []
    monkeypatch.setattr(store, "iter_objects", lambda loc, *a: listed.append(loc.prefix) or type(store).iter_objects(store, loc, *a))
    keys = [o.key for o in tables.walk(store, S3Location("wide", "raw/"))]
    assert listed == ["raw/all/"]  # one listing, not a walk of every folder
    assert sorted(keys) == sorted(walked) == sorted([f"raw/all/d{i}/images/p/mask1.jpg" for i in range(4)]
                                                    + ["raw/all/d1/images/faces/x.jpg"])


def test_a_csv_row_finds_its_photo_in_either_unicode_normalisation():
    decomposed = unicodedata.normalize("NFD", "train/images/José_1/mask1.jpg")
    with Spill() as db:
        rows = tables.load_run_rows(db, iter([iter([ManifestRow(decomposed, "faces/x.jpg", "mask1", Status.DETECTED)])]))
        assert len(list(rows)) == 1
        composed = unicodedata.normalize("NFC", decomposed)
        assert tables.row_of(db, composed).source == decomposed
        assert tables.row_of(db, decomposed).output == "faces/x.jpg"
        assert tables.row_of(db, "train/images/other/mask1.jpg") is None
