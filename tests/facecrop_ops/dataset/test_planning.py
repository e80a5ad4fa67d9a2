import pytest

from facecrop_ops.dataset.planning import classify, make_shards


def test_classify_sorts_a_real_buckets_mess():
    listing = classify([
        "train_data.csv", "test_data.csv", "notes/readme.txt", "train_face.csv", "labels_face.csv",
        "train/images/000001_f_Asian_45/mask1.jpg", "train/images/000001_f_Asian_45/._mask1.jpg",
        "train/images/000001_f_Asian_45/normal.PNG", "train/images/000001_f_Asian_45/Thumbs.db",
        "eval/images/abc.jpg", "eval/info.csv", "train/faces/000001_f_Asian_45/mask1.jpg",
    ])
    assert listing.photos == ["eval/images/abc.jpg", "train/images/000001_f_Asian_45/mask1.jpg", "train/images/000001_f_Asian_45/normal.PNG"]
    assert listing.hidden == ["train/images/000001_f_Asian_45/._mask1.jpg"]
    assert listing.not_photos == ["train/images/000001_f_Asian_45/Thumbs.db"]
    assert listing.csvs == ["labels_face.csv", "test_data.csv", "train_data.csv"]  # train_face.csv is ours
    assert listing.images_roots == ["eval/images/", "train/images/"]


def person(i, n=7):
    return [f"train/images/{i:06d}_f_Asian_30/c{j}.jpg" for j in range(n)]


def test_shards_keep_person_folders_whole_and_cover_every_photo_once():
    photos = [p for i in range(10) for p in person(i)]
    shards = make_shards(photos, photos_per_shard=20, max_shards=100)
    assert [len(s) for s in shards] == [14, 14, 14, 14, 14]
    assert sorted(p for s in shards for p in s) == sorted(photos)
    for shard in shards:
        for folder in {p.rsplit("/", 1)[0] for p in shard}:
            assert sum(p.startswith(folder + "/") for p in shard) == 7


def test_flat_folders_are_cut_into_pieces():
    photos = [f"eval/images/{i:04d}.jpg" for i in range(50)]
    assert [len(s) for s in make_shards(photos, 20, 100)] == [20, 20, 10]


def test_max_shards_grows_shards_instead_of_mapping_more_tasks():
    photos = [p for i in range(100) for p in person(i)]
    shards = make_shards(photos, photos_per_shard=7, max_shards=8)
    assert len(shards) <= 8
    assert sum(map(len, shards)) == 700


def test_same_listing_gives_the_same_shards_in_any_order():
    photos = [p for i in range(9) for p in person(i)] + [f"eval/images/{i}.jpg" for i in range(30)]
    assert make_shards(photos, 25, 50) == make_shards(list(reversed(photos)), 25, 50)


def test_bad_shard_limits_are_refused():
    with pytest.raises(ValueError):
        make_shards(person(1), 0, 10)
    with pytest.raises(ValueError):
        make_shards(person(1), 10, 5000)


def test_hidden_csvs_beside_the_dataset_are_skipped_like_hidden_photos():
    listing = classify(["._train_data.csv", "train_data.csv", "train/images/p/normal.jpg"])
    assert listing.csvs == ["train_data.csv"] and listing.hidden == ["._train_data.csv"]


def test_faces_an_earlier_version_wrote_under_a_nested_images_folder_are_never_photos():
    listing = classify(["train/images/p/images/normal.jpg", "train/faces/p/images/normal.jpg", "train/images/p/normal.jpg"])
    assert listing.photos == ["train/images/p/images/normal.jpg", "train/images/p/normal.jpg"]
    assert listing.faces == ["train/faces/p/images/normal.jpg"]


def test_a_sitting_is_never_cut_whatever_its_size_or_its_first_files_name():
    folder = [f"train/images/p/{name}.jpg" for name in ("a_stray", "incorrect_mask", "mask1", "normal")]
    folder += [f"train/images/p/extra_{i:04d}.jpg" for i in range(5000)]
    others = [f"train/images/q{i}/mask1.jpg" for i in range(30)] + [f"eval/images/{i:04d}.jpg" for i in range(3000)]
    shards = make_shards(folder + others, 2000, 256, whole_folders=True)
    (mine,) = [s for s in shards if "train/images/p/normal.jpg" in s]
    assert sorted(mine) == sorted(folder)  # one shard of its own, 5,004 photos
    assert mine[:2] == ["train/images/p/normal.jpg", "train/images/p/incorrect_mask.jpg"]  # references first
    assert max(len(s) for s in shards if s is not mine) <= 2000  # strangers are still cut
    at_the_boundary = make_shards(folder[:2001], 2000, 256, whole_folders=True)
    assert len(at_the_boundary) == 1
    assert [len(s) for s in make_shards(folder[:2001], 2000, 256)] == [2000, 1]  # no rescue: cut as before


def test_a_folder_of_strangers_is_not_a_sitting_and_names_in_two_normalisations_are_one_folder():
    from facecrop_ops.dataset.naming import folder_of, sittings

    strangers = [f"eval/images/batch1/{i:04d}.jpg" for i in range(5)]
    assert sittings(strangers) == set()
    assert [len(s) for s in make_shards(strangers, 2, 256, whole_folders=True)] == [2, 2, 1]
    nfc, nfd = "train/images/\ud64d\uae38\ub3d9", "train/images/\u1112\u1169\u11bc\u1100\u1175\u11af\u1103\u1169\u11bc"
    assert nfc != nfd and folder_of(nfc + "/mask1.jpg") == folder_of(nfd + "/normal.jpg")
    (shard,) = make_shards([nfc + "/mask1.jpg", nfd + "/normal.jpg"], 1, 256, whole_folders=True)
    assert shard[0] == nfd + "/normal.jpg"
