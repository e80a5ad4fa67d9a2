"""Hostile input against the task bodies on a real S3 API (moto's server on 127.0.0.1): one bad
object never fails a run, every good photo gets its face, every CSV row is published or in
rejects.csv with a reason that names the fix, and raw objects are never modified."""

from __future__ import annotations

import csv
import io
import json

import pytest

from facecrop_dev import hostile, samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops import tasks
from facecrop_ops.config.run import ParamsError
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.csv_rewrite import CsvError
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.dataset.run_folder import folder_name
from facecrop_ops.s3io import S3Store, StorageError

RUN = "manual__2026-12-01T00:00:00+00:00"
PERSON = "train/images/000001_male_White_47"


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        yield server


@pytest.fixture()
def bucket(s3, request):
    name = "h-" + request.node.name.replace("_", "-")[:40].lower().strip("-")
    s3.upload(name, "raw/", samples.dataset(n_people=2, n_eval=2, junk=False))
    return name


@pytest.fixture()
def store(s3):
    return S3Store(s3.client(), threads=8, retry_delays=(0.2, 0.5))


def params(bucket, **extra):
    return {"source_uri": f"s3://{bucket}/raw", "dest_uri": f"s3://{bucket}/out", **extra}


def raw_objects(store, bucket):
    return {k: store.get(bucket, k) for k in store.list(S3Location(bucket, "raw/"))}


def run(store, p, run_id=RUN):
    for ref in tasks.plan(p, run_id, store):
        tasks.crop_shard(p, run_id, ref, store, workers=1)
    return tasks.publish(p, run_id, store)


def run_dir(p, run_id=RUN):
    return f"{p['dest_uri'].split('/', 3)[3]}/_facecrop/runs/{folder_name(run_id)}/"


def manifest_rows(store, bucket, p):
    return {r.source: r for r in manifest.loads(store.get(bucket, run_dir(p) + "manifest.csv").decode())}


def rejects(store, bucket, p):
    return list(csv.DictReader(io.StringIO(store.get(bucket, run_dir(p) + "rejects.csv").decode())))


def test_pixel_bombs_are_error_rows_and_every_other_photo_is_cropped(store, bucket, s3):
    bombs = {f"{PERSON}/mask2.jpg": hostile.jpeg_claiming(60000, 60000),
             f"{PERSON}/mask3.jpg": hostile.jpeg_claiming(20000, 15000),
             "eval/images/bomb.png": hostile.png_claiming(30000, 30000)}
    for key, data in bombs.items():
        s3.client().put_object(Bucket=bucket, Key="raw/" + key, Body=data)
    before = raw_objects(store, bucket)
    p = params(bucket)
    run(store, p)
    rows = manifest_rows(store, bucket, p)
    for key in bombs:
        assert rows[key].status == "error" and rows[key].error.startswith("too large to decode: "), rows[key]
        assert "raise max_megapixels to crop it" in rows[key].error
    good = [r for r in rows.values() if r.status != "error"]
    assert len(good) == 2 * 7 + 2 - 2 and all(store.get_if_exists(bucket, "out/" + r.output) for r in good)
    assert {r["path"] for r in rejects(store, bucket, p)} == {f"{PERSON}/mask2.jpg", f"{PERSON}/mask3.jpg"}
    assert raw_objects(store, bucket) == before


def test_photos_whose_face_key_is_unsafe_are_refused_in_plan_with_the_fix(store, bucket, s3):
    photo = store.get(bucket, f"raw/{PERSON}/normal.jpg")
    long_dest = "out/" + "d" * 700
    nasty = {
        f"{PERSON}/images/normal.jpg": "would lie in an 'images' folder",  # the next run would crop its own output
        f"{PERSON}/../000002_male_White_51/mask1.jpg": "'.' or '..' segment",
        f"train/images/{'p' * 330}/normal.jpg": "over S3's limit of 1024",
    }
    for key in nasty:
        s3.client().put_object(Bucket=bucket, Key="raw/" + key, Body=photo)
    rows_csv = "path\n" + "".join(f"{k}\n" for k in nasty) + f"{PERSON}/normal.jpg\n"
    s3.client().put_object(Bucket=bucket, Key="raw/extra_data.csv", Body=rows_csv.encode())
    p = params(bucket, dest_uri=f"s3://{bucket}/{long_dest}")
    before = raw_objects(store, bucket)
    run(store, p)
    rows = manifest_rows(store, bucket, p)
    for key, reason in nasty.items():
        assert rows[key].status == "error" and rows[key].error.startswith("refused: ") and reason in rows[key].error
    assert json.loads(store.get(bucket, run_dir(p) + "plan.json"))["refused"] == 3
    faces = [k for k in store.list(S3Location(bucket, long_dest + "/"))if "/faces/" in k]
    assert len(faces) == 2 * 7 + 2 and not any("/images/" in k or "/../" in k for k in faces)
    extra = [r for r in rejects(store, bucket, p) if r["csv"].endswith("extra_data.csv")]
    assert {r["path"]: r["reason"].split(": ", 1)[0] for r in extra} == {k: "refused" for k in nasty}
    assert raw_objects(store, bucket) == before


def test_the_next_run_over_the_same_root_never_takes_faces_for_photos(store, bucket, s3):
    s3.client().put_object(Bucket=bucket, Key=f"raw/{PERSON}/images/normal.jpg", Body=store.get(bucket, f"raw/{PERSON}/normal.jpg"))
    p = params(bucket, dest_uri=None)  # faces beside the photos, as by default
    run(store, p, "first")
    run(store, p, "second")
    plan = json.loads(store.get(bucket, "raw/_facecrop/runs/second/plan.json"))
    assert plan["photos"] == 2 * 7 + 2 + 1 and plan["images_roots"] == ["eval/images/", "train/images/"]


def test_a_korean_excel_csv_is_refused_in_plan_then_published_in_its_encoding(store, bucket, s3):
    korean = "path,성별\n" + "".join(f"{PERSON}/{c}.jpg,남성\n" for c in ("mask1", "normal"))
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body=korean.encode("cp949"))
    p = params(bucket)
    with pytest.raises(CsvError, match=r"train_data.csv is not utf-8 text \(byte 0xbc at offset 5\): set the csv_encoding "
                                        r"param to its encoding, e.g. cp949"):
        tasks.plan(p, RUN, store)
    assert not store.list(S3Location(bucket, "out/"))  # nothing planned, cropped or published
    run(store, params(bucket, csv_encoding="cp949"))
    published = store.get(bucket, "out/train_face.csv")
    assert published.decode("cp949") == korean.replace("/images/", "/faces/")
    bom = "\ufeffpath,gender\n" + f"{PERSON}/mask1.jpg,f\n"
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body=bom.encode())
    run(store, p, "utf8")
    assert store.get(bucket, "out/train_face.csv") == bom.replace("/images/", "/faces/").encode()  # the BOM kept


def test_no_csv_of_a_run_is_published_unless_every_one_of_them_can_be(store, bucket, s3):
    p = params(bucket)
    run(store, p, "first")
    refs = tasks.plan(p, "second", store)
    for ref in refs:
        tasks.crop_shard(p, "second", ref, store, workers=1)
    # The last CSV changes under the run: it no longer decodes when publish reads it.
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body="path,é\n".encode("latin-1"))
    with pytest.raises(CsvError, match="train_data.csv is not utf-8 text"):
        tasks.publish(p, "second", store)
    for name in ("test_face.csv", "train_face.csv"):  # test_data.csv comes first and was fine: still the first run's
        assert s3.client().head_object(Bucket=bucket, Key=f"out/{name}")["Metadata"] == {"facecrop-run": "first"}


def test_a_users_own_object_under_a_published_name_is_never_overwritten(store, bucket, s3):
    s3.client().put_object(Bucket=bucket, Key="out/train_face.csv", Body=b"my own labels\n")
    with pytest.raises(tasks.RunError, match=r"out/train_face.csv exists and was not published by facecrop.*move that "
                                             r"object away, or choose another dest_uri"):
        tasks.plan(params(bucket), RUN, store)
    assert store.get(bucket, "out/train_face.csv") == b"my own labels\n"
    s3.client().delete_object(Bucket=bucket, Key="out/train_face.csv")
    run(store, params(bucket), "first")
    run(store, params(bucket), "second")  # its own earlier output is republished
    assert s3.client().head_object(Bucket=bucket, Key="out/train_face.csv")["Metadata"] == {"facecrop-run": "second"}


def test_csv_shapes_spreadsheets_make(store, bucket, s3):
    client = s3.client()
    client.put_object(Bucket=bucket, Key="raw/._train_data.csv", Body=b"\x00\x05\x16\x07\x00\x02Mac OS X  binary")
    long_header = ",".join(f"column_{i:04d}" for i in range(600)) + ",path\n" + "x," * 600 + f"{PERSON}/normal.jpg\n"
    client.put_object(Bucket=bucket, Key="raw/wide_data.csv", Body=long_header.encode())
    client.put_object(Bucket=bucket, Key="raw/formula_data.csv",
                      Body=b'path,note\n=HYPERLINK("http://evil/",  "x"),1\n@SUM(A1),2\n')
    p = params(bucket)
    run(store, p)
    plan = json.loads(store.get(bucket, run_dir(p) + "plan.json"))
    assert "._train_data.csv" in plan["skipped_hidden"] and not any("._" in u for u in plan["csv_uris"])
    assert store.get(bucket, "out/wide_face.csv").decode().splitlines()[1].endswith(f"{PERSON.replace('images', 'faces')}/normal.jpg")
    written = store.get(bucket, run_dir(p) + "rejects.csv").decode()
    assert "'=HYPERLINK" in written and "'@SUM(A1)" in written and "\n=" not in written and ",=" not in written
    client.put_object(Bucket=bucket, Key="raw/twice_data.csv", Body=b"path,path\na,b\n")
    with pytest.raises(CsvError, match="twice_data.csv has 2 columns named 'path': rename all but the one that holds photo paths"):
        tasks.plan(p, "again", store)


def test_misspelt_params_unknown_classes_and_connections_stop_the_run_before_any_data_moves(store, bucket, s3):
    with pytest.raises(ParamsError, match=r"unknown param 'min_face_sise' \(did you mean min_face_size\?\)"):
        tasks.plan(params(bucket, min_face_sise=400), RUN, store)
    with pytest.raises(ParamsError, match=r"miss_rate_limits names 'mask9', no class of this dataset \(its classes: all, "
                                          r"incorrect_mask, mask1"):
        tasks.plan(params(bucket, miss_rate_limits={"mask9": 0.1, "all": 0.5}), RUN, store)
    assert not store.list(S3Location(bucket, "out/"))
    with pytest.raises(StorageError, match="aws_conn_id 'no_such_conn' names no Airflow connection: create it"):
        tasks.open_store(params(bucket, aws_conn_id="no_such_conn"))


class FailingGets:
    """An S3 client whose downloads of some keys fail (after boto3's own retries) the first
    `times` tries, each as a 503 SlowDown."""

    def __init__(self, client, keys, times):
        self.client, self.left, self.gets = client, {k: times for k in keys}, []

    def __getattr__(self, name):
        real = getattr(self.client, name)
        if name != "get_object":
            return real

        def get_object(**kwargs):
            from botocore.exceptions import ClientError

            self.gets.append(kwargs["Key"])
            if self.left.get(kwargs["Key"], 0) > 0:
                self.left[kwargs["Key"]] -= 1
                raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject")
            return real(**kwargs)
        return get_object


@pytest.mark.parametrize("extra", [{}, {"fallback": "sibling", "second_pass": True}], ids=["reference", "siblings"])
def test_a_shard_finishes_every_photo_it_can_and_its_retry_fetches_only_the_rest(store, bucket, s3, extra):
    third = dict(samples.dataset(n_people=3, n_eval=0, junk=False))  # a third person folder S3 never fails
    s3.upload(bucket, "raw/", ((k, v) for k, v in third.items() if "000003_" in k))
    p = params(bucket, photos_per_shard=100, **extra)
    clean = {**p, "dest_uri": f"s3://{bucket}/clean"}
    run(store, clean, "clean")
    throttled = [f"raw/{PERSON}/normal.jpg", f"raw/{PERSON}/mask4.jpg", "raw/train/images/000002_male_White_51/mask1.jpg"]
    (ref,) = tasks.plan(p, RUN, store)
    # Each throttled key fails its first pass and every pause: the try fails, keeping the rest.
    flaky = FailingGets(s3.client(), throttled, times=3)
    with pytest.raises(RuntimeError, match=r"shard 0: 3 photo\(s\) could not be downloaded after every retry.*the task's "
                                           "next try downloads only the rest"):
        tasks.crop_shard(p, RUN, ref, S3Store(flaky, threads=4, retry_delays=(0.1, 0.1)), workers=1)
    assert sorted(k for k in flaky.gets if k in throttled) == sorted(throttled * 3)
    assert not store.get_if_exists(bucket, run_dir(p) + f"shards/{ref['plan']}/00000.manifest.csv")
    # The next try downloads only what is missing (with siblings: the whole folders that lack a photo).
    retry = FailingGets(s3.client(), [], 0)
    tasks.crop_shard(p, RUN, ref, S3Store(retry, threads=4), workers=1)
    folders = {k.rsplit("/", 1)[0] for k in throttled}
    expected = throttled if not extra else [k for k in raw_objects(store, bucket) if k.rsplit("/", 1)[0] in folders]
    assert sorted(k for k in retry.gets if "/images/" in k) == sorted(expected)
    assert not [k for k in retry.gets if "000003_" in k]  # the folder S3 never failed is kept, never fetched again
    tasks.publish(p, RUN, store)

    def outputs(prefix):
        return {k[len(prefix):]: store.get(bucket, k) for k in store.list(S3Location(bucket, prefix)) if "/_facecrop/" not in k}

    assert outputs("out/") == outputs("clean/")  # the same faces and CSVs as a run S3 never failed


def test_photos_that_s3_fails_a_while_are_fetched_by_the_same_try(store, bucket, s3):
    p = params(bucket, photos_per_shard=100)
    (ref,) = tasks.plan(p, RUN, store)
    flaky = FailingGets(s3.client(), [f"raw/{PERSON}/normal.jpg", "raw/eval/images/" + next(
        k.rsplit("/", 1)[1] for k in raw_objects(store, bucket) if "/eval/" in k)], times=2)
    summary = tasks.crop_shard(p, RUN, ref, S3Store(flaky, threads=4, retry_delays=(0.1, 0.1, 0.1)), workers=1)
    assert summary["photos"] == 2 * 7 + 2 and summary["errors"] == 0


class CountingGets:
    """Counts each key's downloads, to show what was never downloaded."""

    def __init__(self, client):
        self.client, self.keys = client, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_object(self, **kwargs):
        self.keys.append(kwargs["Key"])
        return self.client.get_object(**kwargs)


def test_a_photo_file_over_max_photo_megabytes_is_an_error_row_never_downloaded(store, bucket, s3):
    big = f"{PERSON}/mask4.jpg"
    s3.client().put_object(Bucket=bucket, Key="raw/" + big, Body=store.get(bucket, f"raw/{PERSON}/normal.jpg") + b"\0" * 1_200_000)
    store.client = counting = CountingGets(store.client)
    p = params(bucket, max_photo_megabytes=1)
    run(store, p)
    rows = manifest_rows(store, bucket, p)
    assert (rows[big].status, rows[big].reason) == ("error", "too_large") and "raise max_photo_megabytes" in rows[big].error
    assert "raw/" + big not in counting.keys
    assert {r["path"] for r in rejects(store, bucket, p)} == {big}
    assert json.loads(store.get(bucket, run_dir(p) + "plan.json"))["too_large"] == 1


def test_names_equal_under_unicode_normalisation_match_and_twins_are_refused(store, bucket, s3):
    import unicodedata

    nfd = unicodedata.normalize("NFD", "train/images/000009_홍길동_Asian_30")
    photo = store.get(bucket, f"raw/{PERSON}/normal.jpg")
    for cls in ("mask1", "normal"):
        s3.client().put_object(Bucket=bucket, Key=f"raw/{nfd}/{cls}.jpg", Body=photo)
    nfc_rows = "".join(f"{unicodedata.normalize('NFC', nfd)}/{cls}.jpg\n" for cls in ("mask1", "normal"))
    s3.client().put_object(Bucket=bucket, Key="raw/korean_data.csv", Body=("path\n" + nfc_rows).encode())
    p = params(bucket, preset="training")
    run(store, p)
    published = store.get(bucket, "out/korean_face.csv").decode().splitlines()[1:]
    assert published == [f"{nfd.replace('/images/', '/faces/')}/{cls}.jpg" for cls in ("mask1", "normal")]  # the faces' own keys
    assert all(store.get_if_exists(bucket, "out/" + path) for path in published)
    assert not [r for r in rejects(store, bucket, p) if r["csv"].endswith("korean_data.csv")]

    twin = unicodedata.normalize("NFC", nfd) + "/mask1.jpg"
    s3.client().put_object(Bucket=bucket, Key="raw/" + twin, Body=photo)
    with pytest.raises(tasks.RunError, match="have the same name in different Unicode normalisations"):
        tasks.plan(p, "second", store)


def test_published_csvs_keep_windows_line_endings_and_codec_names_in_any_case(store, bucket, s3):
    text = store.get(bucket, "raw/train_data.csv").decode().replace("\n", "\r\n")
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body=text.encode())
    run(store, params(bucket, csv_encoding="UTF-8"))
    published = store.get(bucket, "out/train_face.csv")
    assert published.count(b"\r\n") == text.count("\r\n") and b"\n" not in published.replace(b"\r\n", b"")


def test_a_face_path_the_csvs_encoding_cannot_hold_rejects_its_row_not_the_run(store, bucket, s3):
    """A folder named on macOS (NFD) cannot be written in a cp949 CSV: that row is rejected,
    saying why; every other row is published."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "train/images/000009_홍길동_Asian_30")
    s3.client().put_object(Bucket=bucket, Key=f"raw/{nfd}/normal.jpg", Body=store.get(bucket, f"raw/{PERSON}/normal.jpg"))
    rows = store.get(bucket, "raw/train_data.csv").decode() + unicodedata.normalize("NFC", nfd) + "/normal.jpg\n"
    s3.client().put_object(Bucket=bucket, Key="raw/train_data.csv", Body=rows.encode("cp949"))
    p = params(bucket, csv_encoding="cp949")
    run(store, p)
    (refused,) = [r for r in rejects(store, bucket, p) if "홍길동" in r["path"]]
    assert "cannot be written in cp949: publish the CSVs in utf-8" in refused["reason"]
    assert len(store.get(bucket, "out/train_face.csv").decode("cp949").splitlines()) == 1 + 14
