from dataclasses import replace

from facecrop_ops.dataset.codes import RETRIED, Reason
from facecrop_ops.dataset.incremental import decide
from facecrop_ops.dataset.manifest import ManifestRow


def row(source, etag, status="detected", error="", reason=Reason.NONE):
    output = "" if status == "error" else source.replace("images", "faces")
    return ManifestRow(source, output, "mask1", status, etag=etag, error=error, method="" if status == "error" else "mtcnn",
                       face_etag="" if status == "error" else "F" + etag, reason=reason)


LAST = [row("t/images/p1/mask1.jpg", "a"), row("t/images/p1/mask2.jpg", "b"), row("t/images/p2/mask1.jpg", "c"),
        row("t/images/p2/mask2.jpg", "d", status="error", error="not an image (unrecognised content)",
            reason=Reason.UNREADABLE),
        row("t/images/p3/mask1.jpg", "e"), row("t/images/p3/mask2.jpg", "g")]
# p2/mask1's face was removed; p3/mask2's was overwritten by a run that never published.
FACES = {"t/faces/p1/mask1.jpg": "Fa", "t/faces/p1/mask2.jpg": "Fb", "t/faces/p3/mask1.jpg": "Fe", "t/faces/p3/mask2.jpg": "X"}


def test_the_same_photo_whose_face_is_the_one_uploaded_is_reused_anything_else_is_cropped():
    now = {"t/images/p1/mask1.jpg": "a", "t/images/p1/mask2.jpg": "B2", "t/images/p2/mask1.jpg": "c",
           "t/images/p2/mask2.jpg": "d", "t/images/p3/mask2.jpg": "g", "t/images/p4/mask1.jpg": "f"}
    d = decide(now, LAST, FACES)
    assert sorted(r.source for r in d.reused) == ["t/images/p1/mask1.jpg", "t/images/p2/mask2.jpg"]  # an unreadable photo stays so
    assert all(r.reused for r in d.reused)
    # changed, face gone, face overwritten, new
    assert d.todo == ["t/images/p1/mask2.jpg", "t/images/p2/mask1.jpg", "t/images/p3/mask2.jpg", "t/images/p4/mask1.jpg"]
    assert [r.source for r in d.gone] == ["t/images/p3/mask1.jpg"]


def test_errors_a_retry_may_cure_are_tried_again():
    passing = [replace(LAST[3], error=e, reason=reason) for e, reason in (
        ("photo not found: deleted after the run was planned", Reason.GONE),
        ("detection failed: RuntimeError: CUDA error", Reason.DETECTION_FAILED),
        ("cannot read: I/O error", Reason.READ_FAILED),
        ("too large to decode: 20000x15000 px ...", Reason.TOO_LARGE))]
    for r in passing:
        assert decide({r.source: r.etag}, [r], FACES).todo == [r.source]
    for reason in (Reason.UNREADABLE, Reason.TOO_SMALL, Reason.WRITE_FAILED):  # stay so while the photo does
        r = replace(LAST[3], reason=reason)
        assert decide({r.source: r.etag}, [r], FACES).todo == []


def test_no_decision_depends_on_how_a_message_is_worded():
    """Every message reworded: the same photos are reused, cropped and found deleted."""
    now = {"t/images/p1/mask1.jpg": "a", "t/images/p2/mask2.jpg": "d", "t/images/p4/mask1.jpg": "f"}
    last = [*LAST, *(row(f"t/images/p5/{r.value}.jpg", "x", status="error", error=f"{r.value} happened", reason=r)
                     for r in Reason if r != Reason.NONE)]
    now.update({r.source: r.etag for r in last[len(LAST):]})
    reworded = [replace(r, error="something else entirely") for r in last]
    for whole_folders in (False, True):
        a, b = (decide(now, rows, FACES, whole_folders=whole_folders) for rows in (last, reworded))
        assert (a.todo, [r.source for r in a.reused], [r.source for r in a.gone]) == (
            b.todo, [r.source for r in b.reused], [r.source for r in b.gone])
        assert a.todo == ["t/images/p4/mask1.jpg"] + [f"t/images/p5/{r}.jpg" for r in sorted(RETRIED)] or whole_folders


def test_without_an_index_or_reuse_everything_is_cropped_but_deletions_are_still_found():
    now = {"t/images/p1/mask1.jpg": "a"}
    assert decide(now, None, FACES).todo == ["t/images/p1/mask1.jpg"] and decide(now, [], FACES).reused == []
    d = decide(now, LAST, FACES, reuse=False)
    assert d.todo == ["t/images/p1/mask1.jpg"] and d.reused == [] and len(d.gone) == 5


def test_with_whole_folders_a_change_or_a_deletion_recrops_the_persons_other_photos():
    now = {"t/images/p1/mask1.jpg": "a", "t/images/p1/mask2.jpg": "B2", "t/images/p3/mask1.jpg": "e"}
    d = decide(now, LAST, FACES, whole_folders=True)
    assert d.reused == []  # p1 changed; p3 lost mask2, whose box may have served p3/mask1
    assert d.todo == ["t/images/p1/mask1.jpg", "t/images/p1/mask2.jpg", "t/images/p3/mask1.jpg"]


def test_photos_outside_person_folders_stand_alone_even_with_whole_folders():
    flat = [row("eval/images/a.jpg", "a"), row("eval/images/b.jpg", "b")]
    faces = {"eval/faces/a.jpg": "Fa", "eval/faces/b.jpg": "Fb"}
    d = decide({"eval/images/a.jpg": "a", "eval/images/b.jpg": "b", "eval/images/c.jpg": "c"}, flat, faces, whole_folders=True)
    assert d.todo == ["eval/images/c.jpg"]
    assert sorted(r.source for r in d.reused) == ["eval/images/a.jpg", "eval/images/b.jpg"]
