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


def test_preset_training_expands_into_the_settings_and_their_fingerprint():
    from facecrop_ops.config.crop import Settings

    training = parse({"source_uri": "s3://data/raw", "preset": "training"}).settings
    assert (training.template_match, training.second_detector, training.second_pass, training.fallback) == (
        True, True, True, "sibling")
    assert training == Settings(template_match=True, second_detector=True, second_pass=True, fallback="sibling")
    assert training.fingerprint() != Settings().fingerprint()
    assert parse({"source_uri": "s3://data/raw", "preset": "reference"}).settings == Settings()
    # params the preset does not set keep their values
    tuned = parse({"source_uri": "s3://data/raw", "preset": "training", "template_min_score": 0.9, "min_face_size": 40})
    assert (tuned.settings.template_min_score, tuned.settings.min_face_size, tuned.settings.template_match) == (0.9, 40, True)


def test_a_value_that_contradicts_the_preset_is_refused_with_both_named():
    from facecrop_ops.config.params import expand_preset

    values, problems = expand_preset("training", {"fallback": "centre", "second_pass": True}, frozenset({"fallback"}))
    assert problems == ["fallback='centre' contradicts preset='training', which sets fallback='sibling': leave fallback "
                        "out, or use preset 'reference' and set each option"]
    # The trigger form sends every field: a value at its default is the preset's to set.
    values, problems = expand_preset("training", {"fallback": "centre", "second_pass": False, "template_match": False})
    assert problems == [] and (values["fallback"], values["second_pass"], values["template_match"]) == ("sibling", True, True)
    assert expand_preset("reference", {"fallback": "sibling"}) == ({"fallback": "sibling"}, [])
