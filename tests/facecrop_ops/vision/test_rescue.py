import pytest

from facecrop_ops.vision.geometry import Box, iou, median_box, scale_box
from facecrop_ops.vision.rescue import (
    AGREEING_MIN_SCORE,
    Found,
    Placement,
    accepted_placement,
    agreeing,
    auto_fallback_size,
    reference_box,
    template_sources,
)


def test_iou_scale_and_median():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0 and iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
    assert scale_box((10, 20, 30, 40), (100, 200), (200, 100)) == (20, 10, 60, 20)
    assert median_box([(0, 0, 10, 10), (2, 2, 12, 12), (100, 100, 110, 110)]) == (2, 2, 12, 12)


def test_the_reference_box_prefers_the_bare_face_then_the_loose_mask_then_the_median():
    size = (384, 512)
    mask1, mask2, mask3 = Found("mask1", (10, 10, 50, 50), size), Found("mask2", (12, 12, 52, 52), size), Found("mask3", (90, 90, 130, 130), size)
    loose, bare = Found("incorrect_mask", (20, 20, 60, 60), size), Found("normal", (30, 30, 70, 70), size)
    assert reference_box([mask1, mask2, mask3, loose, bare], size) == (bare.box, "normal")
    assert reference_box([mask1, mask2, mask3, loose], size) == (loose.box, "incorrect_mask")
    assert reference_box([mask1, mask2, mask3], size) == (mask2.box, "median")  # the median ignores the stray one
    assert reference_box([], size) is None


def test_a_sibling_of_another_size_lends_its_box_scaled():
    bare = Found("normal", (100, 100, 200, 220), (384, 512))
    assert reference_box([bare], (768, 1024)) == ((200, 200, 400, 440), "normal")


def test_a_second_pass_face_is_taken_only_where_it_agrees_with_the_siblings():
    reference = (100, 100, 200, 220)
    face, shirt = ((105, 98, 203, 225), 0.55), ((110, 330, 190, 420), 0.62)
    assert agreeing([shirt, face], reference, 0.5) == face
    assert agreeing([shirt], reference, 0.5) is None
    assert agreeing([face], None, 0.5) is None  # nothing to check it against: not taken
    assert agreeing([], reference, 0.5) is None


def test_auto_fallback_size_is_how_the_reference_256x340_was_derived():
    assert auto_fallback_size([Box(0, 0, 213, 283), Box(10, 10, 223, 293)]) == (256, 340)
    assert auto_fallback_size([Box(5, 5, 5, 9)]) is None and auto_fallback_size([]) is None


def test_templates_come_from_the_bare_face_then_the_loose_mask_never_a_covered_nose():
    size = (384, 512)
    mask1, loose, bare = Found("mask1", (10, 10, 50, 50), size), Found("incorrect_mask", (20, 20, 60, 60), size), \
        Found("normal", (30, 30, 70, 70), size)
    assert template_sources([mask1, loose, bare]) == [bare, loose]
    assert template_sources([mask1, loose]) == [loose]
    assert template_sources([mask1]) == []


def test_a_placement_is_taken_above_the_score_or_where_two_templates_agree():
    face, bar = (100, 100, 200, 220), 0.85
    assert AGREEING_MIN_SCORE < 0.84 < bar
    strong, weak = Placement("normal", face, 0.9), Placement("normal", face, 0.84)
    near = Placement("incorrect_mask", (104, 98, 204, 222), 0.835)
    elsewhere = Placement("incorrect_mask", (100, 300, 200, 420), 0.84)
    assert accepted_placement([strong], bar) == strong
    assert accepted_placement([weak], bar) is None
    second = Placement("incorrect_mask", (300, 100, 400, 220), 0.86)
    assert accepted_placement([weak, second], bar) == second  # the next template, alone above the score
    assert accepted_placement([weak, near], bar) == weak  # two witnesses at one place: the better one
    assert accepted_placement([weak, elsewhere], bar) is None  # they disagree: neither
    below = Placement("incorrect_mask", near.box, AGREEING_MIN_SCORE - 0.01)
    assert accepted_placement([weak, below], bar) is None
    assert accepted_placement([], bar) is None


def test_a_reference_photo_far_from_where_the_sitting_shows_the_face_is_passed_over():
    from facecrop_ops.vision.rescue import Found, reference_box, trusted_siblings

    size = (384, 512)
    sitting = [Found("mask1", (100, 100, 200, 220), size), Found("mask2", (110, 95, 205, 215), size),
               Found("incorrect_mask", (105, 105, 200, 225), size)]
    genuine = Found("normal", (120, 110, 215, 230), size)  # moved a little, as people do
    assert trusted_siblings([*sitting, genuine]) == ([*sitting, genuine], [])
    stranger = Found("normal", (250, 300, 330, 400), size)  # someone else, elsewhere and smaller
    kept, passed_over = trusted_siblings([*sitting, stranger])
    assert passed_over == ["normal"] and stranger not in kept
    assert reference_box(kept, size) == ((105, 105, 200, 225), "incorrect_mask")
    assert trusted_siblings([sitting[0], stranger]) == ([sitting[0], stranger], [])  # one witness is not enough
