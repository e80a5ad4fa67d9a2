"""The run's review page: one self-contained HTML file a person opens from the bucket.

It shows the per-class table, this run's miss rate per class beside the previous run's, the
trend over the history (matplotlib charts embedded as PNG), and contact sheets of the crops
worth a look: every fallback, the least confident detections, every unreadable photo.
Sheets are capped so the page stays small. The page is templates/report.html.j2, autoescaped.
Pure: the caller fetches the face thumbnails.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facecrop_ops.dataset.codes import Status
from facecrop_ops.dataset.manifest import ManifestRow

FALLBACK_CAP, LOW_CONFIDENCE, ERROR_CAP = 60, 24, 60
THUMB_WIDTH = 105


@dataclass
class Sheet:
    title: str
    note: str
    rows: list[ManifestRow]
    more: int = 0  # rows left out by the cap


class SheetRows:
    """The rows the contact sheets show, kept as a run's rows stream past: the first fallback
    crops and unreadable photos (in manifest order) and the least confident detections; the
    rest only counted."""

    def __init__(self) -> None:
        self.fallback: list[ManifestRow] = []
        self.errors: list[ManifestRow] = []
        self.least: list[tuple[float, str, ManifestRow]] = []
        self.counts = {"fallback": 0, "errors": 0}

    def add(self, row: ManifestRow) -> None:
        if row.status == Status.FALLBACK:
            self.counts["fallback"] += 1
            if len(self.fallback) < FALLBACK_CAP:
                self.fallback.append(row)
        elif row.status == Status.ERROR:
            self.counts["errors"] += 1
            if len(self.errors) < ERROR_CAP:
                self.errors.append(row)
        elif row.status == Status.DETECTED and row.prob is not None:
            self.least.append((row.prob, row.source, row))
            if len(self.least) > 4 * LOW_CONFIDENCE:
                self.least.sort(key=lambda entry: entry[:2])
                del self.least[LOW_CONFIDENCE:]

    def sheets(self) -> list[Sheet]:
        """What a reviewer looks at: every fallback crop, the lowest-confidence detections, and
        every unreadable photo, each capped."""
        least = [row for *_, row in sorted(self.least, key=lambda entry: entry[:2])[:LOW_CONFIDENCE]]
        return [
            Sheet("Fallback crops", "No face found by the first pass; each tile says how it was then cropped.",
                  self.fallback, self.counts["fallback"] - len(self.fallback)),
            Sheet("Least confident detections", f"The {LOW_CONFIDENCE} detections with the lowest MTCNN probability.", least),
            Sheet("Unreadable photos", "No face file was written; the reason is below each.", self.errors,
                  self.counts["errors"] - len(self.errors)),
        ]


def sheets(rows: Iterable[ManifestRow]) -> list[Sheet]:
    kept = SheetRows()
    for row in rows:
        kept.add(row)
    return kept.sheets()


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def bar_chart(current: Mapping[str, float | None], previous: Mapping[str, float | None] | None) -> str:
    """This run's miss rate per class beside the previous run's, as a PNG data URI."""
    from matplotlib.figure import Figure

    classes = list(current)
    fig = Figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    xs = range(len(classes))
    width = 0.4 if previous else 0.6
    ax.bar([x - (width / 2 if previous else 0) for x in xs], [current[c] or 0 for c in classes], width, label="this run", color="#c0392b")
    if previous:
        ax.bar([x + width / 2 for x in xs], [previous.get(c) or 0 for c in classes], width, label="previous run", color="#95a5a6")
    ax.set_xticks(list(xs), classes, rotation=30, ha="right")
    ax.set_ylabel("miss rate")
    values = [v or 0 for v in (*current.values(), *(previous or {}).values())]
    ax.set_ylim(0, max([0.05, *values]) * 1.15)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.legend(loc="upper right", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def trend_chart(trend: Any) -> str:
    """Miss rate per class over the runs of the history (a pandas table: runs x classes)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    labels = [str(run_after)[:16].replace("T", " ") for run_after, _ in trend.index]
    for name in trend.columns:
        ax.plot(range(len(trend)), trend[name].astype(float), marker="o", label=name, linewidth=2.5 if name == "all" else 1.2)
    ax.set_xticks(range(len(trend)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("miss rate")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.grid(alpha=0.3)
    if len(trend.columns):
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    return _png(fig)


def _environment() -> Any:
    """Templates from this package, autoescaped: photo keys, errors and run ids are data from
    the bucket and the trigger form, never markup."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("facecrop_ops.reporting", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["pct"] = lambda value: "-" if value is None else f"{value:.1%}"
    env.filters["b64"] = lambda data: base64.b64encode(data).decode()
    return env


META_KEYS = ("run_id", "run_after", "logical_date", "source_uri", "dest_uri", "engine", "settings_fingerprint")


def render(run: Mapping[str, Any], classes: Mapping[str, Mapping[str, Any]], bar_png: str, trend_png: str | None,
           previous_run: str | None, contact_sheets: Sequence[Sheet], thumbs: Mapping[str, bytes],
           stale: Sequence[Mapping[str, str]] = (), stale_count: int | None = None) -> str:
    """The whole page as one HTML string; every image is an inline data URI. `thumbs` maps a
    photo's source to a JPEG thumbnail of its face; `stale` lists reviewers' corrections not
    applied because their photo changed (the first ones; `stale_count` counts them all)."""
    template = _environment().get_template("report.html.j2")
    return template.render(run=run, meta_keys=META_KEYS, classes=classes, bar_png=bar_png, trend_png=trend_png,
                           previous_run=previous_run, sheets=contact_sheets, thumbs=thumbs, thumb_width=THUMB_WIDTH,
                           stale=stale, stale_count=len(stale) if stale_count is None else stale_count)
