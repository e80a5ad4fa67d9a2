import pytest

from facecrop_ops.config.crop import Settings, SettingsError


def test_defaults_are_the_reference_values():
    s = Settings().check()
    assert s.margins == (30, 30, 60, 30)
    assert (s.fallback_width, s.fallback_height) == (256, 340)
    assert (s.output_width, s.output_height) == (210, 280)
    assert (s.min_face_size, s.thresholds, s.factor, s.select_largest) == (20, (0.6, 0.7, 0.7), 0.709, True)
    assert s.jpeg_quality == 95 and s.interpolation == "area" and s.device == "auto"


def test_every_bad_value_is_named_with_its_rule_and_default():
    with pytest.raises(SettingsError) as err:
        Settings.from_mapping({"min_face_size": 0, "thresholds": [0.6, 1.5, 0.7], "jpeg_quality": 101}, source="param")
    text = str(err.value)
    assert text.startswith("bad param: ")
    assert "min_face_size=0 is invalid: it must be an integer >= 1 (default 20)" in text
    assert "thresholds=(0.6, 1.5, 0.7) is invalid" in text
    assert "jpeg_quality=101" in text


def test_unknown_keys_are_refused_not_ignored():
    with pytest.raises(SettingsError, match="unknown param: min_face; known ones are"):
        Settings.from_mapping({"min_face": 40}, source="param")


@pytest.mark.parametrize(
    "bad",
    [
        {"device": "gpu"},
        {"interpolation": "bilinear"},
        {"engine": "turbo"},
        {"margin_top": -1},
        {"batch_size": 0},
        {"factor": 1.0},
        {"select_largest": "yes"},
        {"output_width": 2.5},
    ],
)
def test_bad_values_are_refused(bad):
    with pytest.raises(SettingsError, match=next(iter(bad))):
        Settings.from_mapping(bad)


def test_round_trip_through_json_values():
    s = Settings(min_face_size=40, thresholds=(0.5, 0.6, 0.7), device="cuda:1")
    assert Settings.from_mapping(s.as_dict()) == s


def test_the_fingerprint_of_default_settings_is_the_one_runs_recorded_before_template_matching():
    # A run with defaults after the upgrade keeps the fingerprint its last run recorded, so an
    # incremental run still reuses its faces; setting the new knobs changes it.
    assert Settings().fingerprint() == "bd8e4fe85c45"
    assert Settings(template_match=True).fingerprint() != Settings().fingerprint()
    assert Settings(template_min_score=0.9).fingerprint() != Settings().fingerprint()
    assert Settings(template_match=True).uses_siblings and not Settings().uses_siblings
