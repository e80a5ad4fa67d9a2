"""The review artefact's index: which page holds a photo, which pages a filter can skip."""

from facecrop_ops.dataset import review_items
from facecrop_ops.dataset.codes import Method, Status
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.review_items import CORRECTED, LOW, MISSED, ReviewIndex, kind_of, page_info


def _row(source, status=Status.DETECTED, method=Method.MTCNN, prob=0.99):
    return ManifestRow(source, "faces/" + source, "mask1", status, prob, (1.0, 2.0, 30.0, 40.0), (0, 0, 32, 42),
                       faces=1, method=method)


def test_misses_and_reviewer_crops_are_shown_for_what_they_are_and_detections_are_candidates():
    assert kind_of(_row("a", Status.FALLBACK, Method.CENTRE, None)) == MISSED
    assert kind_of(_row("a", Status.EXCLUDED, Method.MANUAL, None)) == CORRECTED
    assert kind_of(_row("a", method=Method.MANUAL)) == CORRECTED
    assert kind_of(_row("a")) is None and review_items.is_candidate(_row("a"))
    assert not review_items.is_candidate(_row("a", method=Method.TEMPLATE))


def test_the_index_finds_a_photos_page_and_skips_pages_without_a_filters_items():
    index = ReviewIndex()
    pages = [[review_items.item(_row(f"p{p}/{i}"), MISSED if p == 1 else LOW) for i in range(3)] for p in range(3)]
    for page in pages:
        index.add(page_info(page))
    again = ReviewIndex.from_json(index.to_json())
    assert again.count == 9 and again.kinds == {LOW: 6, MISSED: 3}
    assert [again.find(s) for s in ("p0/0", "p1/2", "p2/1", "p1/9", "a")] == [0, 1, 2, None, None]
    assert [p.matches(MISSED, None, None) for p in again.pages] == [False, True, False]
    assert [p.matches(None, "mask1", "mtcnn") for p in again.pages] == [True, True, True]
    assert not again.pages[0].matches(None, "normal", None)
