import pytest

from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.manifest import COLUMNS, ManifestRow

ROWS = [
    ManifestRow("train/images/p/normal.jpg", "train/faces/p/normal.jpg", "normal", "detected", 0.9991,
                (100.25, 120.5, 220.75, 300.125), (70, 60, 250, 330), faces=2),
    ManifestRow("eval/images/a.jpg", "eval/faces/a.jpg", "unlabeled", "fallback", crop=(64, 86, 320, 426)),
    ManifestRow("eval/images/b.jpg", "", "unlabeled", "error", error="empty file (0 bytes)"),
]


def test_columns_are_the_agreed_ones_in_order():
    assert COLUMNS[:14] == (
        "source", "output", "class", "status", "prob", "box_x1", "box_y1", "box_x2", "box_y2",
        "crop_x1", "crop_y1", "crop_x2", "crop_y2", "error",
    )
    assert manifest.dumps(ROWS).splitlines()[0] == ",".join(COLUMNS)


def test_round_trip_keeps_every_value_exactly():
    assert sorted(manifest.loads(manifest.dumps(ROWS)), key=lambda r: r.source) == sorted(ROWS, key=lambda r: r.source)


def test_rows_are_sorted_so_reruns_write_identical_bytes():
    assert manifest.dumps(ROWS) == manifest.dumps(list(reversed(ROWS)))
    assert [line.split(",")[0] for line in manifest.dumps(ROWS).splitlines()[1:]] == [
        "eval/images/a.jpg", "eval/images/b.jpg", "train/images/p/normal.jpg",
    ]


def test_empty_fields_for_missing_values():
    rec = ROWS[2].record()
    assert rec["prob"] == rec["box_x1"] == rec["crop_x1"] == rec["output"] == ""


def test_a_csv_that_is_not_a_manifest_is_refused():
    with pytest.raises(ValueError, match="not a facecrop manifest"):
        manifest.loads("path,label\na.jpg,1\n")


def test_a_manifest_written_before_faces_carried_their_etag_still_loads():
    """An index from an earlier version points at such a manifest; its faces are cropped
    again (no ETag to check them by) instead of the run failing."""
    old = "\n".join(",".join(v for c, v in zip(COLUMNS, line.split(",")) if c != "face_etag")
                    for line in manifest.dumps(ROWS).splitlines())
    assert "face_etag" not in old.splitlines()[0]
    loaded = manifest.loads(old)
    assert [r.face_etag for r in loaded] == ["", "", ""]
    assert [r.source for r in loaded] == sorted(r.source for r in ROWS)


def test_rows_written_before_the_reason_column_get_their_reason_from_the_message():
    """The one place message text is read: manifests of older versions, so an index pointing at
    one keeps retrying what it retried."""
    rows = [ManifestRow(f"eval/images/{i}.jpg", "", "unlabeled", "error", error=message) for i, message in enumerate((
        "photo not found: deleted after the run was planned", "cannot read: I/O error",
        "detection failed: RuntimeError", "too large to decode: 20000x15000 px", "too small to detect in (9x9 px)",
        "cannot write face: x", "refused: its key has a '.' or '..' segment", "corrupt or truncated JPEG file"))]
    old = "\n".join(line.rsplit(",", 2)[0] for line in manifest.dumps(rows).splitlines())  # no reason, no reference
    assert [r.reason for r in manifest.loads(old)] == [
        "gone", "read_failed", "detection_failed", "too_large", "too_small", "write_failed", "refused_key", "unreadable"]
