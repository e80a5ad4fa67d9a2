"""The `crop_shard` task: one shard's photos pulled, cropped and uploaded, then its manifest.

Downloads, detection and uploads stream through bounded windows, so a task's memory does not
grow with its shard. The shard manifest is written last: a retry that finds it has nothing
left to do. A photo S3 keeps failing (throttling, 5xx, dropped connections past boto3's
attempts) does not stop the others: it is tried again after them, with pauses; if some still
fail, the rows finished so far are kept in a partial manifest and the try fails, and the next
try fetches only what is missing (whole person folders when crops depend on siblings, the
whole shard when the centre box is sized from the shard's detections).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from facecrop_ops.dataset.codes import Method, Reason, Status
from facecrop_ops.dataset.locations import face_rel, split_images_root
from facecrop_ops.dataset.manifest import ManifestRow
from facecrop_ops.dataset.naming import content_type, folder_of, photo_class, sittings
from facecrop_ops.dataset.run_folder import ShardList, ShardRef
from facecrop_ops.reporting import metrics
from facecrop_ops.reporting.progress import Progress
from facecrop_ops.s3io import S3Store
from facecrop_ops.tasks.context import RunContext, run_context

if TYPE_CHECKING:  # the processor loads OpenCV: only this task's body imports it
    from facecrop_ops.vision.processor import Photo

log = logging.getLogger(__name__)

GONE = "photo not found: deleted or replaced after the run was planned"


def crop_shard(params: Mapping[str, Any], run_id: str, shard: Mapping[str, Any], store: S3Store, *,
               workers: int = 0) -> dict[str, int]:
    """Crop one shard (`shard` is the plan's ShardRef as XCom gives it); returns its counts."""
    return ShardCrop(run_context(params, run_id, store), ShardRef.from_xcom(shard), workers).run()


class ShardCrop:
    """One try of one shard, step by step: finished already? resume from a partial manifest,
    stream the photos through detection to S3, then write the manifest (or the partial one)."""

    def __init__(self, ctx: RunContext, ref: ShardRef, workers: int) -> None:
        self.ctx = ctx
        self.index = ref.shard
        self.files = ctx.folder.shards(ref.plan)
        self.ref = ref
        self.settings = replace(ctx.params.settings, workers=workers)
        self.rows: list[ManifestRow] = []  # the rows of this try, as photos finish
        self.failed: list[tuple[str, Exception]] = []  # downloads S3 kept failing

    def run(self) -> dict[str, int]:
        done = self.ctx.files.rows_if_exists(self.ctx.folder.bucket, self.files.done(self.index))
        if done is not None:
            log.info("shard %d was finished by an earlier try (%d photos): nothing to redo", self.index, len(done))
            return self.summary(done)
        shard = self.ctx.files.shard_list(self.ctx.folder, self.ref.plan, self.index)
        kept = self.resume()
        keys = [k for k in shard.photos if k not in {r.source for r in kept}]
        if kept:
            log.info("shard %d: %d photos were finished by an earlier try; %d left", self.index, len(kept), len(keys))
        uploaded = self.crop(shard, keys)
        rows = kept + [replace(r, face_etag=uploaded[self.ctx.params.dest.key(r.output)]) if r.output else r
                       for r in self.rows]
        if self.failed:
            self.keep_partial(rows)
        self.ctx.files.write_rows(self.ctx.folder.bucket, self.files.done(self.index), rows)
        summary = self.summary(rows)
        log.info("shard %d: %d photos, %d faces uploaded to %s, %d detected, %d fallback, %d errors",
                 self.index, summary["photos"], len(uploaded) + sum(bool(r.output) for r in kept),
                 self.ctx.params.dest.uri, summary["detected"], summary["fallback"], summary["errors"])
        return summary

    def resume(self) -> list[ManifestRow]:
        """The rows an earlier try finished (none when centre boxes are sized from the whole
        shard: they must all be cropped together)."""
        if self.settings.fallback_size == "auto":
            return []
        return self.ctx.files.rows_if_exists(self.ctx.folder.bucket, self.files.partial(self.index)) or []

    def crop(self, shard: ShardList, keys: list[str]) -> dict[str, str]:
        """Stream `keys` through download, detection and upload; returns each face key's new
        ETag. Rows go to self.rows as photos finish."""
        from facecrop_ops.vision.detector import resolve_device
        from facecrop_ops.vision.processor import crop_photos, plan_workers

        s = self.settings
        device = resolve_device(s.device)
        n_workers = plan_workers(s, len(keys))
        log.info("detect on %s%s, %d process(es) planned, engine %s, batch %d", device, _device_name(device),
                 n_workers, s.engine, s.batch_size)
        self.pulled = Progress(len(keys), lambda line: log.info("pull: %s", line))
        self.cropped = Progress(len(keys), lambda line: log.info("crop: %s", line))
        etags = shard.etag_of
        rp = self.ctx.params

        def faces() -> Iterator[tuple[str, bytes, str]]:
            for result in crop_photos(self.photos(shard, keys), s, on_done=lambda part: self.cropped.advance(len(part)),
                                      workers=n_workers, reread=lambda photo: self.reread(photo, etags)):
                source = result.row.source
                manual = shard.manual.get(source)
                applied = manual is not None and result.row.method == Method.MANUAL
                self.rows.append(replace(result.row, etag=etags[source], correction=manual.id if applied else ""))
                if result.face is not None:
                    yield rp.dest.key(result.row.output), result.face, content_type(result.row.output)

        return self.ctx.s3.put_many(rp.dest.bucket, faces())

    def downloads(self, keys: list[str], etags: Mapping[str, str]) -> Iterator[tuple[str, bytes | None]]:
        """The planned version of each photo (its size was checked against max_photo_megabytes
        in the plan): one replaced since is not read, but counted gone."""
        src = self.ctx.params.source
        for key, data in self.ctx.s3.get_many(src.bucket, (src.key(k) for k in keys), self.pulled.advance, self.failed,
                                              {src.key(k): etags[k] for k in keys}):
            yield src.rel(key), data

    def photos(self, shard: ShardList, keys: list[str]) -> Iterator[Photo]:
        """Photos for the processor as they arrive; a photo deleted since the plan is an error row."""
        from facecrop_ops.vision.processor import Photo

        etags = shard.etag_of
        for rel, data in self.downloads(keys, etags):
            if data is None:
                self.rows.append(ManifestRow(rel, "", photo_class(rel), Status.ERROR, error=GONE, etag=etags[rel],
                                             reason=Reason.GONE))
                self.cropped.advance(1)
            else:
                manual = shard.manual.get(rel)
                yield Photo(rel, face_rel(*split_images_root(rel)), data=data, manual_box=manual.box if manual else None)

    def reread(self, photo: Photo, etags: Mapping[str, str]) -> bytes:
        """The planned version of a photo again (a centre crop sized after the shard)."""
        from facecrop_ops.vision.imaging import BadPhoto

        src = self.ctx.params.source
        data = self.ctx.s3.get_if_exists(src.bucket, src.key(photo.source), etag=etags[photo.source])
        if data is None:
            raise BadPhoto("photo not found: deleted or replaced while the shard ran", Reason.GONE)
        return data

    def keep_partial(self, rows: list[ManifestRow]) -> None:
        """Keep what this try finished and fail it: the retry fetches only the rest."""
        src = self.ctx.params.source
        missing = {src.rel(key) for key, _ in self.failed}
        if self.settings.uses_siblings:  # their siblings were cropped without them: redo the sittings
            together = sittings(r.source for r in rows) | sittings(missing)
            folders = {folder_of(k) for k in missing} & together
            rows = [r for r in rows if folder_of(r.source) not in folders]
        self.ctx.files.write_rows(self.ctx.folder.bucket, self.files.partial(self.index), rows)
        key, error = self.failed[0]
        raise RuntimeError(f"shard {self.index}: {len(self.failed)} photo(s) could not be downloaded after every retry, "
                           f"e.g. s3://{src.bucket}/{key}: {error}. {len(rows)} photo(s) are done and kept; the "
                           "task's next try downloads only the rest")

    def summary(self, rows: list[ManifestRow]) -> dict[str, int]:
        m = metrics.per_class(rows)[metrics.ALL]
        return {"shard": self.index, "photos": m.images, "detected": m.detected, "fallback": m.fallback, "errors": m.errors}


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f" ({torch.cuda.get_device_name(torch.device(device))})"
    return f" ({os.cpu_count()} CPU cores)"

