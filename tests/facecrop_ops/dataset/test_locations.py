import pytest

from facecrop_ops.dataset.locations import (
    S3Location,
    face_rel,
    parse_s3_uri,
    published_csv_name,
    split_images_root,
)


def test_parse_s3_uri_normalises_the_prefix():
    assert parse_s3_uri("s3://bucket/masks/raw") == S3Location("bucket", "masks/raw/")
    assert parse_s3_uri("s3://bucket/masks/raw/") == S3Location("bucket", "masks/raw/")
    assert parse_s3_uri("s3://bucket") == S3Location("bucket", "")
    assert parse_s3_uri("s3://bucket").uri == "s3://bucket/"


@pytest.mark.parametrize("bad", ["bucket/raw", "https://bucket/raw", "s3://", "s3://B/x", "s3:///x", None])
def test_bad_uris_say_what_is_expected(bad):
    with pytest.raises(ValueError, match=r"source_uri must look like s3://bucket/prefix"):
        parse_s3_uri(bad, "source_uri")


def test_images_root_is_the_path_up_to_the_first_images_segment():
    assert split_images_root("train/images/000001_f_Asian_45/mask1.jpg") == ("train/images/", "000001_f_Asian_45/mask1.jpg")
    assert split_images_root("eval/images/abc.jpg") == ("eval/images/", "abc.jpg")
    assert split_images_root("images/x.jpg") == ("images/", "x.jpg")
    assert split_images_root("train_data.csv") is None
    assert split_images_root("my_images/x.jpg") is None
    assert split_images_root("train/faces/p/x.jpg") is None


def test_face_keys_replace_the_images_segment_of_the_root_only():
    assert face_rel("train/images/", "p/images.jpg") == "train/faces/p/images.jpg"
    assert face_rel("images/", "x.jpg") == "faces/x.jpg"


@pytest.mark.parametrize(
    ("name", "published"),
    [("train_data.csv", "train_face.csv"), ("test_data.csv", "test_face.csv"), ("labels.csv", "labels_face.csv")],
)
def test_published_csv_names(name, published):
    assert published_csv_name(name) == published


def test_a_face_key_must_be_one_s3_takes_that_never_resolves_elsewhere_nor_lies_under_an_images_folder():
    from facecrop_ops.dataset.locations import face_key_problem

    dest = S3Location("b", "out/")
    assert face_key_problem("train/images/p/mask1.jpg", dest) is None
    assert "'.' or '..' segment" in face_key_problem("train/images/p/../q/mask1.jpg", dest)
    assert "'.' or '..' segment" in face_key_problem("train/images/./mask1.jpg", dest)
    nested = face_key_problem("train/images/p/images/mask1.jpg", dest)
    assert "train/faces/p/images/mask1.jpg would lie in an 'images' folder" in nested and "rename the inner" in nested
    assert face_key_problem("train/images/" + "p" * 1002 + "/x.jpg", dest) is None  # out/train/faces/...: 1,024 bytes exactly
    too_long = face_key_problem("train/images/" + "p" * 1003 + "/x.jpg", dest)
    assert "1025 bytes, over S3's limit of 1024: choose a shorter dest_uri" in too_long
    assert "over S3's limit" in face_key_problem("train/images/" + "é" * 510 + "/x.jpg", dest)  # bytes, not characters
