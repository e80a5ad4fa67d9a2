import json

from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.run_folder import DestFolder, IndexDoc, ManualBox, PlanDoc, ShardList, StaleCorrection

DEST = DestFolder(S3Location("b", "out/"))


def test_every_object_of_a_run_has_one_name():
    run = DEST.run("manual__2026-11-28T10:00:00.123+00:00")
    assert run.loc.prefix.startswith("out/_facecrop/runs/manual__2026-11-28T10_00_00.123_00_00-")
    shards = run.shards("abc")
    assert [shards.photos(3), shards.done(3), shards.partial(3), shards.reused, shards.gone, shards.refused] == [
        run.loc.prefix + f"shards/abc/{name}" for name in
        ("00003.json", "00003.manifest.csv", "00003.partial.csv", "reused.csv", "gone.csv", "refused.csv")]
    assert [run.plan, run.manifest, run.rejects, run.metrics, run.report] == [
        run.loc.prefix + name for name in ("plan.json", "manifest.csv", "rejects.csv", "metrics.json", "report.html")]
    assert (DEST.index, DEST.history, DEST.corrections_csv, DEST.correction("x")) == (
        "out/_facecrop/index.json", "out/_facecrop/history.csv", "out/_facecrop/corrections.csv",
        "out/_facecrop/corrections/x.json")


def test_documents_round_trip_and_read_what_older_versions_wrote():
    plan = PlanDoc("r", "p", "s3://b/raw/", "s3://b/out/", ["s3://b/raw/a.csv"], ["train/images/"], 10, 2,
                   stale_corrections=[StaleCorrection("train/images/p/mask1.jpg", "box", "ann", "t")])
    assert PlanDoc.from_json(plan.to_json()) == plan
    older = {k: v for k, v in json.loads(plan.to_json()).items() if k not in ("refused", "corrected", "stale_corrections")}
    assert PlanDoc.from_json(json.dumps({**older, "added_by_a_newer_version": 1})).refused == 0

    shard = ShardList(["a.jpg", "b.jpg"], ["e1", "e2"], {"b.jpg": ManualBox((1.0, 2.0, 30.0, 40.0), "id1")})
    assert ShardList.from_json(shard.to_json()) == shard
    assert ShardList.from_json('{"photos": ["a.jpg"], "etags": ["e1"]}').manual == {}  # planned before reviews

    index = IndexDoc("r", "out/_facecrop/runs/r/manifest.csv", "s3://b/raw/", "f00")
    assert IndexDoc.from_json(index.to_json()) == index and not index.legacy
    assert IndexDoc.from_json('{"run_id": "r", "manifest": "m", "source_uri": "s", "settings_fingerprint": "f"}').legacy


def test_two_run_ids_never_share_a_folder_and_portable_ids_keep_their_own_name():
    typed, triggered = "manual__2026-12-01T23:36:06.080612+00:00", "manual__2026-12-01T23_36_06.080612_00_00"
    assert DEST.run(typed) != DEST.run(triggered)
    assert DEST.run(triggered).loc.prefix == f"out/_facecrop/runs/{triggered}/"  # already portable: as it is
    assert DEST.legacy_run(typed) == DEST.run(triggered)  # where versions before the hash put the first
