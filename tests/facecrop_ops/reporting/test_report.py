import base64
import re
from html.parser import HTMLParser

import cv2
import numpy as np
import pandas as pd

from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.reporting import report


def row(i, status, prob=None, error=""):
    source = f"train/images/p{i:03d}/mask1.jpg"
    return ManifestRow(source, "" if status == "error" else source.replace("images", "faces"), "mask1", status, prob=prob, error=error)


def test_sheets_show_every_fallback_the_least_confident_detections_and_every_error_capped():
    rows = ([row(i, "fallback") for i in range(70)] + [row(100 + i, "detected", prob=1 - i / 100) for i in range(40)]
            + [row(200, "error", error="empty file (0 bytes)")])
    fallback, low, errors = report.sheets(rows)
    assert len(fallback.rows) == report.FALLBACK_CAP and fallback.more == 70 - report.FALLBACK_CAP
    assert [r.prob for r in low.rows] == sorted(r.prob for r in rows if r.status == "detected")[: report.LOW_CONFIDENCE]
    assert low.more == 0 and [r.error for r in errors.rows] == ["empty file (0 bytes)"]


def _decoded(data_uri):
    raw = base64.b64decode(data_uri.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)


def test_charts_are_real_png_images():
    bar = report.bar_chart({"mask1": 0.5, "normal": 0.0, "all": None}, {"mask1": 0.25, "normal": 0.1})
    assert bar.startswith("data:image/png;base64,") and _decoded(bar).shape[1] > 400
    trend = pd.DataFrame({"mask1": [0.5, 0.4], "all": [0.3, None]},
                         index=pd.MultiIndex.from_tuples([("2026-11-01T00:00:00+00:00", "a"), ("2026-11-02T00:00:00+00:00", "b")]))
    assert _decoded(report.trend_chart(trend)).shape[1] > 400


def test_the_page_holds_the_table_charts_and_labelled_tiles_and_escapes_names():
    face = cv2.imencode(".jpg", np.full((140, 105, 3), 128, np.uint8))[1].tobytes()
    bad = ManifestRow("eval/images/<script>x</script>.jpg", "", "unlabeled", "error", error="not an image")
    rows = [row(1, "fallback"), row(2, "detected", prob=0.91), bad]
    classes = {"mask1": {"images": 2, "detected": 1, "fallback": 1, "rescued": 1, "errors": 0, "miss_rate": 0.5},
               "all": {"images": 3, "detected": 1, "fallback": 1, "rescued": 1, "errors": 1, "miss_rate": 0.5}}
    run = {"run_id": "manual__x", "report": "s3://b/r.html"}
    page = report.render(run, classes, "data:image/png;base64,AAAA", None, None, report.sheets(rows),
                         {rows[0].source: face, rows[1].source: face})
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;.jpg" in page
    assert re.search(r"<td>mask1</td><td>2</td><td>1</td><td>1</td><td>1</td><td>0</td><td>50.0%</td><td>0</td>", page)
    assert page.count('<img alt="train/images/p00') == 2 and "p=0.910" in page and "not an image" in page
    assert "Trend over the history" not in page  # one run: nothing to trend yet


def test_a_big_run_stays_a_small_page():
    face = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (140, 105, 3), np.uint8))[1].tobytes()
    rows = [row(i, "fallback") for i in range(5000)] + [row(10_000 + i, "detected", prob=0.9) for i in range(5000)]
    thumbs = {r.source: face for r in rows}
    page = report.render({"run_id": "r"}, {}, report.bar_chart({"all": 0.5}, None), None, None, report.sheets(rows), thumbs)
    assert len(page) < 3_000_000 and "4940 more not shown" in page


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(name for name, _ in attrs)


def test_html_in_keys_errors_run_ids_and_class_names_never_reaches_the_page_as_markup():
    face = cv2.imencode(".jpg", np.full((140, 105, 3), 128, np.uint8))[1].tobytes()
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    rows = [ManifestRow(f"train/images/{evil}/mask1.jpg", f"train/faces/{evil}/mask1.jpg", "mask1", "fallback", method="centre"),
            ManifestRow('train/images/a"onmouseover="alert(3)/normal.jpg', "train/faces/x/normal.jpg", "normal", "detected", prob=0.5),
            ManifestRow(f"eval/images/{evil}.jpg", "", "unlabeled", "error", error=f"not an image {evil}")]
    classes = {evil: {"images": 1, "detected": 0, "fallback": 1, "errors": 0, "miss_rate": 1.0}}
    run = {"run_id": f"manual__{evil}", "source_uri": f"s3://b/{evil}", "engine": evil}
    page = report.render(run, classes, "data:image/png;base64,AAAA", "data:image/png;base64,BBBB", f"prev{evil}",
                         report.sheets(rows), {r.source: face for r in rows})
    parsed = _Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags and "onerror" not in parsed.attributes and "onmouseover" not in parsed.attributes
    # every image on the page is one the template put there: two charts and the two face tiles
    assert parsed.tags.count("img") == 4
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page and page.count("&lt;script&gt;") >= 7
