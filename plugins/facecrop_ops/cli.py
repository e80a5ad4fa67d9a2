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
from typing import Any

from facecrop_ops.config.crop import Settings, SettingsError
from facecrop_ops.config.options import Option, options
from facecrop_ops.config.params import CROP, DETECT, PARAMS, SCALE, expand_preset
from facecrop_ops.dataset import manifest
from facecrop_ops.dataset.naming import face_path, is_hidden, is_photo_name, sitting_order
from facecrop_ops.reporting import metrics


class UsageError(Exception):
    """A problem with the command line or the folders; printed as one line, exit 2."""


class _SetParams(argparse.Action):
    """Stores what an option says about the params it sets into `namespace.params`, so that
    only the settings given on the command line are there (a preset fills the rest)."""

    def __init__(self, option_strings: list[str], dest: str, option: Option, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0 if option.parse is None else None, **kwargs)
        self.option = option

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if self.option.parse is None:
            parsed = {self.option.params[0]: not (option_string or "").startswith("--no-")}
        else:
            try:
                parsed = self.option.parse(values)
            except ValueError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None
        namespace.params = {**namespace.params, **parsed}


SECTIONS = {CROP: "crop geometry", DETECT: "detection (MTCNN)", SCALE: "limits"}


def build_parser(prog: str = "facecrop") -> argparse.ArgumentParser:
    """`facecrop crop SRC DST [options]`: the options are config.options', from the params table."""
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
    crop.set_defaults(params={})
    groups = {section: crop.add_argument_group(title) for section, title in SECTIONS.items()}
    for option in options():
        target = groups.get(option.section, crop)
        target.add_argument(*option.flags, action=_SetParams, option=option, dest=f"_{option.params[0]}",
                            help=option.help.replace("%", "%%"), metavar=option.metavar, choices=option.choices,
                            default=argparse.SUPPRESS)
    crop.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The options given, over the preset's values, over the defaults; judged by the table."""
    given = dict(args.params)
    preset = given.pop("preset", PARAMS["preset"].default)
    chosen, problems = expand_preset(preset, given, frozenset(given))
    if problems:
        problem = "; ".join(p.replace("preset=", "--preset ").replace("use preset 'reference'", "use --preset reference")
                            for p in problems)
        raise SettingsError(f"bad option: {problem}")
    return Settings.from_mapping(chosen, source="option")


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
    if settings.uses_siblings:
        photos.sort(key=sitting_order)  # a sitting's photos together, its reference photos first
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
