import pytest

from facecrop_ops.dataset import csv_rewrite
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.manifest import ManifestRow

SOURCE = S3Location("raw-bucket", "masks/")
ROOTS = ["eval/images/", "train/images/"]
PHOTOS = {
    "train/images/000001_f_Asian_45/mask1.jpg": ManifestRow("train/images/000001_f_Asian_45/mask1.jpg", "x", "mask1", "detected"),
    "train/images/000001_f_Asian_45/normal.jpg": ManifestRow("train/images/000001_f_Asian_45/normal.jpg", "x", "normal", "fallback"),
    "train/images/000002_m_Black_20/mask2.jpg": ManifestRow("train/images/000002_m_Black_20/mask2.jpg", "", "mask2", "error", error="empty file (0 bytes)"),
    "eval/images/abc.jpg": ManifestRow("eval/images/abc.jpg", "x", "unlabeled", "detected"),
}


def rewrite(text, dest=SOURCE, path_column="path"):
    return csv_rewrite.rewrite(text, csv_name="train_data.csv", path_column=path_column, photos=PHOTOS,
                               images_roots=ROOTS, source=SOURCE, dest=dest)


def test_each_style_of_path_keeps_its_style_with_only_the_images_segment_changed():
    text = (
        "gender,path,age\n"
        "female,train/images/000001_f_Asian_45/mask1.jpg,45\n"
        "female,/data/masks/train/images/000001_f_Asian_45/normal.jpg,45\n"
        "female,s3://raw-bucket/masks/train/images/000001_f_Asian_45/mask1.jpg,45\n"
        ",eval/images/abc.jpg,\n"
    )
    out = rewrite(text)
    assert out.text.splitlines() == [
        "gender,path,age",
        "female,train/faces/000001_f_Asian_45/mask1.jpg,45",
        "female,/data/masks/train/faces/000001_f_Asian_45/normal.jpg,45",
        "female,s3://raw-bucket/masks/train/faces/000001_f_Asian_45/mask1.jpg,45",
        ",eval/faces/abc.jpg,",
    ]
    assert out.kept == 4 and out.rejects == []


def test_s3_uris_point_at_the_faces_real_location_when_dest_differs():
    out = rewrite("path\ns3://raw-bucket/masks/train/images/000001_f_Asian_45/mask1.jpg\ntrain/images/000001_f_Asian_45/normal.jpg\n",
                  dest=S3Location("faces-bucket", "v2/"))
    assert out.text.splitlines()[1:] == [
        "s3://faces-bucket/v2/train/faces/000001_f_Asian_45/mask1.jpg",
        "train/faces/000001_f_Asian_45/normal.jpg",
    ]


def test_only_the_matched_segment_changes_not_every_images_substring():
    photos = {"train/images/images_v1/mask1.jpg": ManifestRow("train/images/images_v1/mask1.jpg", "x", "mask1", "detected")}
    out = csv_rewrite.rewrite("path\n/home/me/images/train/images/images_v1/mask1.jpg\n", csv_name="c", path_column="path",
                              photos=photos, images_roots=["train/images/"], source=SOURCE, dest=SOURCE)
    assert out.text.splitlines()[1] == "/home/me/images/train/faces/images_v1/mask1.jpg"


def test_unreadable_unknown_and_foreign_rows_are_rejected_with_reasons():
    text = (
        "path,label\n"
        "train/images/000002_m_Black_20/mask2.jpg,1\n"
        "train/images/000009_x_y_1/mask1.jpg,1\n"
        "somewhere/else/mask1.jpg,1\n"
        ",1\n"
        "s3://another-bucket/masks/train/images/000001_f_Asian_45/mask1.jpg,0\n"
        "train/images/000001_f_Asian_45/mask1.jpg,0\n"
    )
    out = rewrite(text)
    assert out.kept == 1
    assert [(r.line, r.reason) for r in out.rejects] == [
        (2, "photo unreadable: empty file (0 bytes)"),
        (3, "photo not found in the dataset (missing, hidden or not a photo file)"),
        (4, "path is not under an images folder of the dataset (eval/images/, train/images/)"),
        (5, "empty path"),
        (6, "an s3:// URI outside the dataset (s3://raw-bucket/masks/): its face would not exist"),
    ]
    assert csv_rewrite.rejects_csv(out.rejects).splitlines()[:2] == [
        "csv,line,path,reason",
        "train_data.csv,2,train/images/000002_m_Black_20/mask2.jpg,photo unreadable: empty file (0 bytes)",
    ]


def test_quoting_other_columns_and_a_bom_survive():
    out = rewrite('\ufeffpath,note\ntrain/images/000001_f_Asian_45/mask1.jpg,"a, b ""quoted"""\n')
    assert out.text.splitlines()[1] == 'train/faces/000001_f_Asian_45/mask1.jpg,"a, b ""quoted"""'


def test_a_csv_without_the_path_column_names_the_fix():
    with pytest.raises(csv_rewrite.CsvError, match=r"train_data.csv has no column 'path' \(its columns: file, label\); set the path_column param"):
        rewrite("file,label\na.jpg,1\n")
    assert rewrite("file,label\ntrain/images/000001_f_Asian_45/mask1.jpg,1\n", path_column="file").kept == 1


def test_encodings_round_trip_and_a_utf8_byte_order_mark_is_kept():
    text = "path,성별\ntrain/images/p/mask1.jpg,남성\n"
    assert csv_rewrite.decode(text.encode("cp949"), "cp949", "c.csv") == (text, False)
    assert csv_rewrite.decode(("\ufeff" + text).encode(), "utf-8", "c.csv") == (text, True)
    assert csv_rewrite.encode(text, "utf-8", True, "c.csv") == ("\ufeff" + text).encode()
    with pytest.raises(csv_rewrite.CsvError, match=r"c.csv is not utf-8 text \(byte 0xbc at offset 5\)"):
        csv_rewrite.decode(text.encode("cp949"), "utf-8", "c.csv")
    with pytest.raises(csv_rewrite.CsvError, match="which latin-1 cannot hold: choose a dest_uri in plain ASCII"):
        csv_rewrite.encode("s3://b/페이스/x.jpg", "latin-1", False, "c.csv")


def test_rejects_csv_writes_formulas_from_the_data_as_text():
    rejected = [csv_rewrite.Reject("=cmd|' /C calc'!A0", 2, '=HYPERLINK("http://x")', "-1+1"),
                csv_rewrite.Reject("a.csv", 3, "@SUM(A1)", "plain reason")]
    lines = csv_rewrite.rejects_csv(rejected).splitlines()
    assert lines[1].startswith("'=cmd") and "'=HYPERLINK" in lines[1] and lines[1].endswith(",'-1+1")
    assert lines[2] == "a.csv,3,'@SUM(A1),plain reason"


def test_a_second_column_of_the_path_name_stops_the_run():
    with pytest.raises(csv_rewrite.CsvError, match="has 2 columns named 'path'"):
        csv_rewrite.check_path_column(["path", "label", "path"], "path", "c.csv")


def test_which_rows_are_rejected_depends_on_codes_not_on_message_wording():
    from dataclasses import replace

    from facecrop_ops.dataset.codes import Reason

    source = dest = S3Location("b", "raw/")
    photos = {f"train/images/p/{c}.jpg": ManifestRow(f"train/images/p/{c}.jpg", "", c, "error", error="was refused",
                                                    reason=reason)
              for c, reason in (("mask1", Reason.REFUSED_KEY), ("mask2", Reason.UNREADABLE))}
    text = "path\ntrain/images/p/mask1.jpg\ntrain/images/p/mask2.jpg\n"
    for rows in (photos, {k: replace(r, error="refused: reworded") for k, r in photos.items()}):
        out = csv_rewrite.rewrite(text, csv_name="a.csv", path_column="path", photos=rows, images_roots=["train/images/"],
                      source=source, dest=dest)
        refused, unreadable = out.rejects
        assert refused.reason == rows["train/images/p/mask1.jpg"].error  # the plan's own message, as it is
        assert unreadable.reason == "photo unreadable: " + rows["train/images/p/mask2.jpg"].error
