import pytest

from facecrop_ops.config.run import ParamsError, parse
from facecrop_ops.dataset.locations import S3Location


def test_defaults_give_the_reference_settings_and_dest_equal_to_source():
    rp = parse({"source_uri": "s3://data/masks"})
    assert rp.source == rp.dest == S3Location("data", "masks/")
    assert rp.path_column == "path" and rp.aws_conn_id == "aws_default" and rp.csv_uris == ()
    assert rp.settings.margins == (30, 30, 60, 30) and rp.settings.min_face_size == 20


def test_every_problem_is_listed_in_one_error():
    with pytest.raises(ParamsError) as err:
        parse({"source_uri": "data/masks", "dest_uri": "s3://x", "min_face_size": -1, "csv_uris": ["s3://data/a.txt"],
               "miss_rate_limits": {"all": 3}, "max_shards": 5000})
    text = str(err.value)
    for fragment in ("source_uri='data/masks' is invalid: it must be an s3:// URI such as s3://bucket/prefix",
                     "dest_uri='s3://x' is invalid", "min_face_size=-1", "entry 's3://data/a.txt' is invalid: it must name a .csv object",
                     "miss_rate_limits={'all': 3} is invalid: it must be an object mapping class names to rates 0..1",
                     "max_shards=5000 is invalid: it must be an integer 1..512"):
        assert fragment in text


def test_dest_inside_an_images_folder_is_refused():
    with pytest.raises(ParamsError, match="dest_uri must not lie inside an images folder"):
        parse({"source_uri": "s3://data/masks", "dest_uri": "s3://data/masks/train/images/out"})


def test_crop_settings_come_from_params():
    rp = parse({"source_uri": "s3://data", "min_face_size": 40, "thresholds": [0.5, 0.6, 0.7]})
    assert rp.settings.min_face_size == 40 and rp.settings.thresholds == (0.5, 0.6, 0.7)


def test_csvs_may_be_uris_or_names_under_the_dataset_root():
    rp = parse({"source_uri": "s3://data/masks", "csv_uris": ["train_data.csv", "labels/extra.csv", "s3://other/x.csv"]})
    assert rp.csv_uris == ("train_data.csv", "labels/extra.csv", "s3://other/x.csv")
    for bad in ("/abs/x.csv", "../up.csv", "x.txt", "http://h/x.csv"):
        with pytest.raises(ParamsError, match="csv_uris entry"):
            parse({"source_uri": "s3://data/masks", "csv_uris": [bad]})
