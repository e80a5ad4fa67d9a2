from pathlib import PurePosixPath

import pytest

from facecrop_ops.dataset import naming
from facecrop_ops.dataset.naming import content_type, face_path, is_hidden, is_photo_name, photo_class


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        ("train/images/000001_female_Asian_45/mask1.jpg", "mask1"),
        ("train/images/000001_female_Asian_45/mask5.png", "mask5"),
        ("train/images/000001_female_Asian_45/incorrect_mask.jpeg", "incorrect_mask"),
        ("train/images/000001_female_Asian_45/normal.jpg", "normal"),
        ("eval/images/cbc5c6e168e63498590db46022617123f1fe1268.jpg", "unlabeled"),
        ("train/images/000001_female_Asian_45/selfie.jpg", "unlabeled"),
    ],
)
def test_class_is_the_file_stem_for_known_classes(path, cls):
    assert photo_class(path) == cls


def test_face_path_replaces_only_the_images_segment():
    assert face_path("train/images/000001_f_Asian_45/mask1.jpg") == "train/faces/000001_f_Asian_45/mask1.jpg"
    # The notebook's str.replace would also have rewritten these.
    assert face_path("my_images/train/images/p/images.jpg") == "my_images/train/faces/p/images.jpg"


def test_face_path_replaces_the_first_images_segment_only():
    assert face_path("a/images/images/x.jpg") == "a/faces/images/x.jpg"


def test_face_path_without_an_images_segment_is_unchanged():
    assert face_path("flat/x.jpg") == "flat/x.jpg"


def test_hidden_files_and_photo_extensions():
    assert is_hidden("train/images/p/._mask1.jpg")
    assert is_hidden(".DS_Store")
    assert not is_hidden("train/images/p/mask1.jpg")
    assert is_photo_name("a/B.JPG") and is_photo_name("a/b.jpeg") and is_photo_name("a/b.png")
    assert not is_photo_name("train_data.csv") and not is_photo_name("a/noext")


def test_content_type_follows_the_extension():
    assert content_type("x/mask1.jpg") == "image/jpeg"
    assert content_type("x/mask1.JPEG") == "image/jpeg"
    assert content_type("x/mask1.png") == "image/png"


def test_a_sitting_is_a_folder_below_an_images_folder_holding_a_class_named_photo():
    from facecrop_ops.dataset.naming import folder_of, sittings

    assert folder_of("train/images/000001_female_Asian_45/mask1.jpg") == "train/images/000001_female_Asian_45"
    assert folder_of("eval/images/0a1b2c.jpg") is None  # strangers side by side
    assert folder_of("train/images/normal.jpg") is None
    assert sittings(["train/images/p/notes.jpg", "train/images/p/mask1.jpg", "eval/images/b/x.jpg"]) == {"train/images/p"}


@pytest.mark.parametrize("key", ["train/images/p1/mask1.jpg", "a.jpg", ".DS_Store", "x/._mask1.jpg", "x//y.jpg",
                                 "./x/y.JPG", "/abs/z.png", "x/y/", "x/.", "a/b.", "a/.b.c", "images", "é/ü.jpeg"])
def test_names_are_split_as_pure_posix_path_splits_them(key):
    pure = PurePosixPath(key)
    assert naming.split_name(key) == (str(pure.parent), pure.name)
    assert naming.is_hidden(key) == pure.name.startswith(".")
    assert naming.is_photo_name(key) == (pure.suffix.lower() in naming.PHOTO_EXTENSIONS)
