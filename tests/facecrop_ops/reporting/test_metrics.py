from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.reporting import metrics


def rows(cls, detected, fallback, errors):
    out = [ManifestRow(f"{cls}/d{i}", "o", cls, "detected") for i in range(detected)]
    out += [ManifestRow(f"{cls}/f{i}", "o", cls, "fallback") for i in range(fallback)]
    out += [ManifestRow(f"{cls}/e{i}", "", cls, "error") for i in range(errors)]
    return out


def test_miss_rate_is_fallbacks_over_readable_photos_per_class_and_overall():
    m = metrics.per_class(rows("normal", 9, 1, 0) + rows("mask1", 2, 2, 1) + rows("unlabeled", 0, 0, 2))
    assert list(m) == ["mask1", "normal", "unlabeled", "all"]
    assert m["mask1"].miss_rate == 0.5 and m["mask1"].images == 5 and m["mask1"].errors == 1
    assert m["normal"].miss_rate == 0.1
    assert m["unlabeled"].miss_rate is None
    assert (m["all"].images, m["all"].detected, m["all"].fallback, m["all"].errors) == (17, 11, 3, 3)
    assert m["all"].miss_rate == 3 / 14


def test_json_and_table_carry_the_same_numbers():
    m = metrics.per_class(rows("mask2", 3, 1, 0))
    assert metrics.as_json(m)["mask2"] == {"images": 4, "detected": 3, "fallback": 1, "errors": 0, "rescued": 0, "reused": 0,
                                           "corrected": 0, "excluded": 0, "rescued_template": 0, "rescued_second_pass": 0,
                                           "rescued_sibling": 0, "rescued_yunet": 0, "miss_rate": 0.25}
    table = metrics.table(m)
    assert "mask2" in table and "25.0%" in table
    assert table.splitlines()[0].split() == ["class", "images", "detected", "fallback", "rescued", "errors", "miss", "rate", "reused",
                                             "corrected"]
    assert table.splitlines()[-1].split() == ["all", "4", "3", "1", "0", "0", "25.0%", "0", "0"]


def test_rescued_misses_are_counted_by_method_and_the_gauges_keep_their_names():
    methods = ["template", "template", "second_pass", "sibling", "yunet", "centre"]
    found = [ManifestRow(f"p/m{i}", "o", "mask1", "fallback", method=m) for i, m in enumerate(methods)]
    found.append(ManifestRow("p/n", "o", "normal", "detected", method="mtcnn"))
    m = metrics.per_class(found)
    assert (m["mask1"].fallback, m["mask1"].rescued) == (6, 5)
    assert (m["all"].rescued_template, m["all"].rescued_second_pass, m["all"].rescued_sibling, m["all"].rescued_yunet) == (2, 1, 1, 1)
    assert metrics.as_json(m)["mask1"]["rescued_template"] == 2
    gauges = metrics.gauges(metrics.as_json(m))
    assert gauges["facecrop.rescued.mask1"] == 5 and not any("rescued_" in name for name in gauges)
    assert metrics.table(m).splitlines()[-1] == "rescued by method: template 2, yunet 1, second_pass 1, sibling 1"
