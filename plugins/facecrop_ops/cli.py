"""`facecrop crop SRC DST` (or `python -m facecrop_ops crop ...`): the library on a local folder, same code path as the DAG.

Exit status 0 when the run finished, even with unreadable photos (they are error rows in
DST/manifest.csv); 2 with one line on stderr for a bad argument or an unusable SRC/DST.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from facecrop_ops.config.crop import DEFAULTS, ENGINES, FALLBACKS, INTERPOLATIONS, Settings, SettingsError
from facecrop_ops.config.params import PRESETS, expand_preset
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.naming import face_path, is_hidden, is_photo_name
from facecrop_ops.reporting import metrics


class UsageError(Exception):
    """A problem with the command line or the folders; printed as one line, exit 2."""


def _ints(text: str, count: int, sep: str) -> tuple[int, ...]:
    parts = text.lower().split(sep)
    if len(parts) != count or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected {count} integers separated by '{sep}', got {text!r}")
    return tuple(int(p) for p in parts)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by ',', got {text!r}") from None


def build_parser(prog: str = "facecrop") -> argparse.ArgumentParser:
    d = DEFAULTS
    # No prefix abbreviations: with them `--fallback sibling` was taken for `--fallback-size`.
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    crop = sub.add_parser(
        "crop",
        allow_abbrev=False,
        help="crop every photo below SRC into DST",
        description="Detect the face in every photo below SRC and write 210x280 face crops to DST "
        "under the same relative path, with the folder 'images' renamed 'faces'.",
    )
    crop.add_argument("src", metavar="SRC", type=Path, help="folder of photos (searched recursively)")
    crop.add_argument("dst", metavar="DST", type=Path, help="output folder (may equal SRC when photos sit in an 'images' folder)")
    crop.add_argument("--preset", choices=tuple(PRESETS), default="reference",
                      help="reference: the notebook, exactly (default); training: the best-measured crops of masked "
                           "faces (--template-match --second-pass --fallback sibling). An option the preset sets may "
                           "be repeated with the preset's value, not contradicted")
    geo = crop.add_argument_group("crop geometry")
    geo.add_argument("--margins", type=lambda t: _ints(t, 4, ","), default=d.margins, metavar="L,R,T,B",
                     help=f"padding around the face box (default {','.join(map(str, d.margins))})")
    geo.add_argument("--fallback-size", type=_fallback_size, default=(d.fallback_width, d.fallback_height),
                     metavar="auto|WxH", help=f"centre crop when no face is found; auto: 1.2 x the mean padded crop of "
                                          f"the run's detections (default {d.fallback_width}x{d.fallback_height})")
    geo.add_argument("--fallback", choices=FALLBACKS, default=None,
                     help="where MTCNN misses: the centre box, or the box of the same person's detected photos "
                          f"(a person folder) (default {d.fallback}; sibling with --preset training)")
    geo.add_argument("--output-size", type=lambda t: _ints(t, 2, "x"), default=(d.output_width, d.output_height),
                     metavar="WxH", help=f"size of every face (default {d.output_width}x{d.output_height})")
    geo.add_argument("--interpolation", choices=INTERPOLATIONS, default=d.interpolation)
    geo.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality, metavar="Q", help=f"1..100 (default {d.jpeg_quality})")
    det = crop.add_argument_group("detection (MTCNN)")
    det.add_argument("--device", default=d.device, help="auto (cuda if available), cpu, cuda or cuda:N (default auto)")
    det.add_argument("--min-face-size", type=int, default=d.min_face_size, metavar="PX",
                     help=f"smallest face searched for; 40-80 is much faster but changes boxes (default {d.min_face_size})")
    det.add_argument("--thresholds", type=_floats, default=d.thresholds, metavar="P,R,O",
                     help="P-, R-, O-Net score thresholds (default 0.6,0.7,0.7)")
    det.add_argument("--factor", type=float, default=d.factor, help=f"image pyramid scale step (default {d.factor})")
    det.add_argument("--select", choices=("largest", "probability"), default="largest",
                     help="which face to crop when there are several (default largest)")
    det.add_argument("--engine", choices=ENGINES, default=d.engine, help="fast (default) or facenet's own MTCNN.detect")
    det.add_argument("--batch-size", type=int, default=d.batch_size, help=f"photos per detector call (default {d.batch_size})")
    det.add_argument("--workers", type=int, default=d.workers, help="processes on CPU; 0 = one per core (default)")
    det.add_argument("--second-pass", action="store_true", default=None,
                     help="detect missed photos again with relaxed thresholds; keep a face only where it agrees "
                          "with the same person's detected photos")
    det.add_argument("--second-pass-thresholds", type=_floats, default=d.second_pass_thresholds, metavar="P,R,O",
                     help="thresholds of the second pass (default 0.4,0.5,0.5)")
    det.add_argument("--second-pass-min-iou", type=float, default=d.second_pass_min_iou, metavar="IOU",
                     help=f"least overlap with the siblings' face box for a second-pass face (default {d.second_pass_min_iou})")
    det.add_argument("--template-match", action="store_true", default=None,
                     help="where MTCNN misses, find the same person's upper face from their detected normal (else "
                          "incorrect_mask) photo by template matching; tried before the second pass")
    det.add_argument("--template-min-score", type=float, default=d.template_min_score, metavar="SCORE",
                     help=f"least template-matching score accepted (default {d.template_min_score})")
    crop.add_argument("--max-megapixels", type=int, default=d.max_megapixels, metavar="MP",
                      help=f"photos whose header claims more are error rows, not decoded (default {d.max_megapixels})")
    crop.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _fallback_size(text: str) -> tuple[int, int] | str:
    return "auto" if text.strip().lower() == "auto" else _ints(text, 2, "x")


# Options a preset sets: None when not given, so that a preset can tell them from defaults.
_PRESET_OPTIONS = ("fallback", "second_pass", "template_match")


def settings_from_args(args: argparse.Namespace) -> Settings:
    left, right, top, bottom = args.margins
    auto = args.fallback_size == "auto"
    width, height = (DEFAULTS.fallback_width, DEFAULTS.fallback_height) if auto else args.fallback_size
    given = {name: getattr(args, name) for name in _PRESET_OPTIONS if getattr(args, name) is not None}
    chosen, problems = expand_preset(args.preset, given, frozenset(given))
    if problems:
        problem = "; ".join(p.replace("preset=", "--preset ").replace("use preset 'reference'", "use --preset reference")
                            for p in problems)
        raise SettingsError(f"bad option: {problem}")
    chosen = {name: chosen.get(name, getattr(DEFAULTS, name)) for name in _PRESET_OPTIONS}
    return Settings(
        margin_left=left, margin_right=right, margin_top=top, margin_bottom=bottom,
        fallback_width=width, fallback_height=height, fallback_size="auto" if auto else "fixed",
        fallback=chosen["fallback"], second_pass=chosen["second_pass"], template_match=chosen["template_match"],
        template_min_score=args.template_min_score,
        second_pass_thresholds=tuple(args.second_pass_thresholds),
        second_pass_min_iou=args.second_pass_min_iou,
        output_width=args.output_size[0], output_height=args.output_size[1],
        interpolation=args.interpolation, jpeg_quality=args.jpeg_quality,
        device=args.device, min_face_size=args.min_face_size, thresholds=tuple(args.thresholds),
        factor=args.factor, select_largest=args.select == "largest", engine=args.engine,
        batch_size=args.batch_size, workers=args.workers, max_megapixels=args.max_megapixels,
    ).check("option")


def find_photos(src: Path, dst: Path) -> tuple[list[str], list[str], list[str]]:
    """Relative POSIX paths below SRC: (photos, hidden files, other files). Faces written by an
    earlier run into SRC (DST inside SRC, or DST == SRC) are not taken for photos."""
    photos, hidden, others = [], [], []
    dst_inside = dst != src and dst.is_relative_to(src)
    for root, dirs, files in os.walk(src):
        root_path = Path(root)
        if dst_inside and root_path == dst:
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            rel = (root_path / name).relative_to(src).as_posix()
            if dst == src and "faces" in rel.split("/")[:-1]:
                continue
            if dst == src and rel == "manifest.csv":
                continue
            if is_hidden(rel):
                hidden.append(rel)
            elif is_photo_name(rel):
                photos.append(rel)
            else:
                others.append(rel)
    return photos, hidden, others


def run_crop(args: argparse.Namespace) -> int:
    from facecrop_ops.reporting.progress import Progress
    from facecrop_ops.vision.detector import resolve_device
    from facecrop_ops.vision.processor import Photo, crop_photos, plan_workers

    src, dst = args.src.resolve(), args.dst.resolve()
    if not src.is_dir() or not os.access(src, os.R_OK | os.X_OK):
        raise UsageError(f"SRC {args.src} is not a readable folder")
    settings = settings_from_args(args)
    photos, hidden, others = find_photos(src, dst)
    if dst == src:
        clash = [p for p in photos if face_path(p) == p]
        if clash:
            raise UsageError(f"DST is SRC but {clash[0]} has no 'images' folder in its path, so its face "
                             "would overwrite it; choose a DST outside SRC")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create DST {args.dst}: {exc.strerror}") from None

    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    workers = plan_workers(settings, len(photos))
    device = resolve_device(settings.device)
    say(f"facecrop: {len(photos)} photos in {args.src}, device {device}, {workers} worker process(es), engine {settings.engine}")
    progress = Progress(len(photos), say)
    jobs = [Photo(source=p, output=face_path(p), path=str(src / p)) for p in photos]
    rows = []
    started = time.monotonic()
    for result in crop_photos(jobs, settings, on_done=lambda part: progress.advance(len(part))):
        rows.append(result.row)
        if result.face is not None:
            _write_atomic(dst / result.row.output, result.face)
    (dst / "manifest.csv").write_text(manifest.dumps(rows))
    elapsed = time.monotonic() - started

    print(metrics.table(metrics.per_class(rows)))
    if hidden:
        print(f"skipped {len(hidden)} hidden file(s) (._* and dot-files), e.g. {hidden[0]}")
    if others:
        print(f"skipped {len(others)} file(s) without a photo extension, e.g. {others[0]}")
    errors = [r for r in rows if r.status == "error"]
    for row in errors[:10]:
        print(f"error: {row.source}: {row.error}")
    if len(errors) > 10:
        print(f"... and {len(errors) - 10} more errors, see the manifest")
    rate = len(rows) / elapsed if elapsed > 0 else 0.0
    print(f"{len(rows)} photos in {elapsed:.1f}s ({rate:.1f}/s); faces in {dst}, manifest {dst / 'manifest.csv'}")
    return 0


def _write_atomic(path: Path, data: bytes) -> None:
    """Write then rename, so an interrupted run never leaves a half-written face behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None, prog: str = "facecrop") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        return run_crop(args)
    except (UsageError, SettingsError) as exc:
        print(f"facecrop: error: {exc}", file=sys.stderr)
        return 2
