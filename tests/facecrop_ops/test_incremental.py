from facecrop_ops.incremental import decide
from facecrop_ops.manifest import ManifestRow


def row(source, etag, status="detected", output=None):
    return ManifestRow(source, "" if status == "error" else (output or source.replace("images", "faces")), "mask1", status,
                       etag=etag, method="" if status == "error" else "mtcnn")


LAST = [row("t/images/p1/mask1.jpg", "a"), row("t/images/p1/mask2.jpg", "b"), row("t/images/p2/mask1.jpg", "c"),
        row("t/images/p2/mask2.jpg", "d", status="error"), row("t/images/p3/mask1.jpg", "e")]
FACES = {"t/faces/p1/mask1.jpg", "t/faces/p1/mask2.jpg", "t/faces/p3/mask1.jpg"}  # p2/mask1's face was removed


def test_same_photo_and_face_still_there_is_reused_anything_else_is_cropped():
    now = {"t/images/p1/mask1.jpg": "a", "t/images/p1/mask2.jpg": "B2", "t/images/p2/mask1.jpg": "c",
           "t/images/p2/mask2.jpg": "d", "t/images/p4/mask1.jpg": "f"}
    d = decide(now, LAST, FACES)
    assert sorted(r.source for r in d.reused) == ["t/images/p1/mask1.jpg", "t/images/p2/mask2.jpg"]  # an unreadable photo stays so
    assert all(r.reused for r in d.reused)
    assert d.todo == ["t/images/p1/mask2.jpg", "t/images/p2/mask1.jpg", "t/images/p4/mask1.jpg"]  # changed, face gone, new
    assert [r.source for r in d.gone] == ["t/images/p3/mask1.jpg"]


def test_without_an_index_everything_is_cropped():
    now = {"t/images/p1/mask1.jpg": "a"}
    assert decide(now, None, FACES).todo == ["t/images/p1/mask1.jpg"] and decide(now, [], FACES).reused == []


def test_with_whole_folders_a_change_recrops_the_persons_other_photos_too():
    now = {"t/images/p1/mask1.jpg": "a", "t/images/p1/mask2.jpg": "B2", "t/images/p3/mask1.jpg": "e"}
    d = decide(now, LAST, FACES, whole_folders=True)
    assert [r.source for r in d.reused] == ["t/images/p3/mask1.jpg"]
    assert d.todo == ["t/images/p1/mask1.jpg", "t/images/p1/mask2.jpg"]
