"""Face review at 1,000, 10,000 and 100,000 reviewers' decisions: a save, a page load and the
plan task's reading of decisions, now (a snapshot and the objects after it) beside before
(every decision object read, twice per save).

Against moto's S3 server on 127.0.0.1 through the same client the API server uses. The
decisions and the photos of the plan's dataset are put straight into moto's store (its HTTP
PUT runs at ~50 objects/s here, which would take the benchmark an hour to fill); everything
timed goes through HTTP. Before's figures are the time to list and read every decision object
(what each save did twice and each page load and plan once), measured up to --before-max
decisions and extrapolated by its growth beyond.

    .venv/bin/python benchmarks/bench_review.py                      # 1,000, 10,000 and 100,000
    .venv/bin/python benchmarks/bench_review.py --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from facecrop_dev import samples
from facecrop_dev.local_s3 import moto_server
from facecrop_ops import tasks
from facecrop_ops.dataset import corrections
from facecrop_ops.dataset.locations import S3Location
from facecrop_ops.review import service
from facecrop_ops.run_store import CSV_MARK, CSV_SETTLED, CSV_YOUNG, RunStore
from facecrop_ops.s3io import S3Store


def build_parser() -> argparse.ArgumentParser:
    """The command line, apart so tests/test_docs.py can check documented commands against it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="decision counts, comma-separated")
    parser.add_argument("--before-max", type=int, default=10_000, help="largest count to time the old reading at")
    return parser


def _inject(bucket: str, objects: list[tuple[str, bytes]]) -> None:
    """Objects straight into moto's store (setup only)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key, data in objects:
        backend.put_object(bucket, key, data, etag=hashlib.md5(data).hexdigest())


PHOTO = b"\xff\xd8\xff"  # the plan lists photos, never reads them: a few bytes each
PHOTO_ETAG = hashlib.md5(PHOTO).hexdigest()


def _decisions(n: int, photos: list[str], start: datetime, prefix: str) -> list[tuple[str, bytes]]:
    """n decisions by 3 reviewers over the photos, one a second, as the review page writes them:
    boxes, photos with no usable face, crops said to be right."""
    out = []
    for i in range(n):
        at = (start + timedelta(seconds=i)).isoformat(timespec="milliseconds")
        kind = ("box", "no_face", "accept")[i % 3]
        c = corrections.make(photos[i % len(photos)], PHOTO_ETAG, kind, [1, 1, 2, 2] if kind == "box" else None,
                             f"reviewer{i % 3}", at, f"{i:08x}", (384, 512))
        out.append((f"{prefix}_facecrop/corrections/{c.id}.json", c.to_json().encode()))
    return out


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(n: int, before_max: int) -> dict[str, float | None]:
    with moto_server() as s3:
        os.environ.update(s3.airflow_connection_env())
        bucket = f"review-bench-{n}"
        store = S3Store(s3.client(), threads=8)
        # A small run the page shows, over sample photos...
        s3.upload(bucket, "raw/", samples.dataset(n_people=1, n_eval=0, junk=False))
        params = {"source_uri": f"s3://{bucket}/raw", "dest_uri": f"s3://{bucket}/out"}
        for ref in tasks.plan(params, "small", store):
            tasks.crop_shard(params, "small", ref, store, workers=1)
        tasks.publish(params, "small", store)
        run = service.Run("small", "success", "", service.run_params(params))
        files = RunStore(store, S3Location(bucket, "out/"))
        # ...and as many more photos as decisions, each decided on a month ago, for the plan.
        photos = [f"train/images/{i:07d}_x/mask1.jpg" for i in range(n)]
        _inject(bucket, [("raw/" + p, PHOTO) for p in photos])
        settled = _decisions(n, photos, datetime.now(timezone.utc) - timedelta(days=30), "out/")
        _inject(bucket, settled)
        result: dict[str, float | None] = {"decisions": n}
        if n <= before_max:
            loc = files.dest.corrections
            result["before"] = _best(lambda: [d for _, d in store.get_many(bucket, store.list(loc))], 1)
            result["migration"] = _best(lambda: files.compact(datetime.now(timezone.utc)), 1)
        else:  # their fold, written as the first compaction would have (it reads every object once: timed below it)
            fold = corrections.DecisionFold()
            for key, data in settled:
                fold.add_object(key, data)
            through = settled[-1][0].rsplit("/", 1)[-1]
            store.put_text(bucket, files.dest.corrections_snapshot, corrections.Snapshot(through, fold).to_json())
            listed = (",".join(corrections.COLUMNS) + "\n" + corrections.csv_rows(
                corrections.parse(data) for _, data in settled)).encode()
            store.put(bucket, files.dest.corrections_csv, listed, "text/csv",
                      {CSV_MARK: through, CSV_SETTLED: str(len(listed)), CSV_YOUNG: "0"})
            result["before"] = result["migration"] = None
        # The last quarter hour's decisions, not settled yet, after the snapshot.
        _inject(bucket, _decisions(50, photos, datetime.now(timezone.utc) - timedelta(minutes=5), "out/"))

        def first_page():
            service._snapshots.clear()
            service._reviews.clear()
            service._decision_objects.clear()
            service.items(run, store)

        photo = "train/images/000001_male_White_47/mask1.jpg"
        result["save"] = _best(lambda: service.record(run, store, photo, "box", [100, 100, 200, 250], "bench"))
        result["page, first"] = _best(first_page)
        result["page, next"] = _best(lambda: service.items(run, store))
        compacting = []
        real = RunStore.compact

        def timed(self, now, cache=None):
            t0 = time.perf_counter()
            try:
                return real(self, now, cache)
            finally:
                compacting.append(time.perf_counter() - t0)

        RunStore.compact = timed
        try:
            result["plan"] = _best(lambda: tasks.plan({**params, "photos_per_shard": 100_000}, "bench", store), 1)
        finally:
            RunStore.compact = real
        result["plan: decisions"] = compacting[-1]
        return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"{n} decisions...", file=sys.stderr, flush=True)
        rows.append(measure(n, args.before_max))
    timed = [(r["decisions"], r["before"], r["migration"]) for r in rows if r["before"] is not None]
    growth = None
    if len(timed) >= 2:
        (n1, b1, m1), (n2, b2, m2) = timed[0], timed[-1]
        growth = (math.log(b2 / b1) / math.log(n2 / n1), math.log(m2 / m1) / math.log(n2 / n1))
    print(f"\n{'decisions':>10}{'save':>8}{'page, first':>13}{'page, next':>12}{'plan':>9}{'of it, decisions':>18}"
          f"{'':>3}{'before: save':>14}{'before: page, plan':>20}{'first compaction':>18}")
    for r in rows:
        before, migration, mark = r["before"], r["migration"], ""
        if before is None and growth is not None:
            n1, b1, m1 = timed[-1]
            before, migration, mark = b1 * (r["decisions"] / n1) ** growth[0], m1 * (r["decisions"] / n1) ** growth[1], "~"
        share = r["plan: decisions"] / r["plan"]
        print(f"{r['decisions']:>10,}{r['save']:>7.2f}s{r['page, first']:>12.2f}s{r['page, next']:>11.2f}s{r['plan']:>8.1f}s"
              f"{r['plan: decisions']:>9.2f}s ({share:>4.1%}){'':>2}{mark}{2 * before:>12.1f}s{mark}{before:>18.1f}s"
              f"{mark}{migration:>16.1f}s")
    if growth is not None:
        print(f"\n~: extrapolated by the growth measured from {timed[0][0]:,} to {timed[-1][0]:,} "
              f"(exponent {growth[0]:.2f} reading every object, {growth[1]:.2f} the first compaction)")
    print("save: one box decision (the photo's header read at the run's ETag, one object written). page: the review "
          "page's items (first: no snapshot or object cached in the server; next: cached). plan: the whole task over as "
          "many photos as decisions, and of it the reading of decisions (a compaction: snapshot, the 50 objects saved "
          "since, corrections.csv). before: every decision object listed and read, which a save did twice and a page "
          "load and plan once. first compaction: once, when a destination with decisions meets this version.")
    print("targets at 100,000 decisions: a save <= 0.5 s, a page load <= 2 s, plan's reading of decisions <= 5 % of it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
