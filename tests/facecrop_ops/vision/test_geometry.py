from facecrop_ops.vision.geometry import Box, fallback_box, padded_box


def test_padded_box_matches_the_notebook_inside_the_photo():
    # int() truncation, then 30 px left/right/bottom and 60 px on top.
    assert padded_box((100.9, 150.7, 220.2, 300.99), 384, 512) == Box(70, 90, 250, 330)


def test_padded_box_clamps_to_the_photo_edges():
    assert padded_box((10.5, 40.2, 370.0, 500.0), 384, 512) == Box(0, 0, 384, 512)


def test_padded_box_truncates_negative_coordinates_toward_zero_like_int():
    # int(-3.7) == -3 (not floor's -4); the clamp then takes over.
    assert padded_box((-3.7, -0.5, 50.2, 60.8), 384, 512) == Box(0, 0, 80, 90)


def test_padded_box_clamps_to_the_photos_real_size_not_384x512():
    assert padded_box((500.0, 600.0, 700.0, 900.0), 1000, 800) == Box(470, 540, 730, 800)
    assert padded_box((100.0, 100.0, 200.0, 200.0), 220, 240) == Box(70, 40, 220, 230)


def test_padded_box_margins_are_parameters():
    assert padded_box((100.0, 100.0, 200.0, 200.0), 384, 512, (0, 0, 0, 0)) == Box(100, 100, 200, 200)
    assert padded_box((100.0, 100.0, 200.0, 200.0), 384, 512, (5, 6, 7, 8)) == Box(95, 93, 206, 208)


def test_a_face_box_off_the_photo_gives_an_empty_box_not_a_wrapped_slice():
    box = padded_box((-200.0, 10.0, -100.0, 90.0), 384, 512)
    assert box.empty
    assert box.x1 >= 0 and box.x2 >= 0


def test_fallback_box_is_the_reference_centre_crop():
    assert fallback_box(384, 512) == Box(64, 86, 320, 426)


def test_fallback_box_on_odd_sizes_rounds_down_and_keeps_its_size():
    box = fallback_box(385, 513)
    assert box == Box(64, 86, 320, 426)
    assert (box.width, box.height) == (256, 340)


def test_fallback_box_on_a_photo_smaller_than_the_crop_takes_the_whole_side():
    assert fallback_box(200, 300) == Box(0, 0, 200, 300)
    assert fallback_box(200, 600) == Box(0, 130, 200, 470)


def test_fallback_size_is_a_parameter():
    assert fallback_box(384, 512, (100, 50)) == Box(142, 231, 242, 281)
