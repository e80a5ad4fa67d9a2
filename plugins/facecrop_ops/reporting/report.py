"""The run's review page: one self-contained HTML file a person opens from the bucket.

It shows the per-class table, this run's miss rate per class beside the previous run's, the
trend over the history (matplotlib charts embedded as PNG), and contact sheets of the crops
worth a look: every fallback, the least confident detections, every unreadable photo.
Sheets are capped so the page stays small. Pure: the caller fetches the face thumbnails.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facecrop_ops.dataset.manifest import DETECTED, ERROR, FALLBACK, ManifestRow

FALLBACK_CAP, LOW_CONFIDENCE, ERROR_CAP = 60, 24, 60
THUMB_WIDTH = 105


@dataclass
class Sheet:
    title: str
    note: str
    rows: list[ManifestRow]
    more: int = 0  # rows left out by the cap


def sheets(rows: Sequence[ManifestRow]) -> list[Sheet]:
    """What a reviewer looks at: every fallback crop, the lowest-confidence detections, and
    every unreadable photo, each capped."""
    fallback = [r for r in rows if r.status == FALLBACK]
    detected = sorted((r for r in rows if r.status == DETECTED and r.prob is not None), key=lambda r: (r.prob, r.source))
    errors = [r for r in rows if r.status == ERROR]
    return [
        Sheet("Fallback crops", "No face found: the centre box was cropped.", fallback[:FALLBACK_CAP], max(0, len(fallback) - FALLBACK_CAP)),
        Sheet("Least confident detections", f"The {LOW_CONFIDENCE} detections with the lowest MTCNN probability.",
              detected[:LOW_CONFIDENCE]),
        Sheet("Unreadable photos", "No face file was written; the reason is below each.", errors[:ERROR_CAP],
              max(0, len(errors) - ERROR_CAP)),
    ]


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


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:4px 10px;text-align:right;border-bottom:1px solid #ddd}
td:first-child,th:first-child{text-align:left}tr.all td{font-weight:bold;border-top:2px solid #999}
.meta td{text-align:left}.sheet{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:%dpx;font-size:10px;word-break:break-all}figure img{width:%dpx;display:block}
figure.error{border:1px solid #c0392b;padding:4px;width:%dpx}.note{color:#666}
""" % (THUMB_WIDTH, THUMB_WIDTH, THUMB_WIDTH * 2)


def _tile(row: ManifestRow, thumb: bytes | None) -> str:
    label = html.escape(row.source)
    if row.status == ERROR:
        return f'<figure class="error"><figcaption><b>{label}</b><br>{html.escape(row.error)}</figcaption></figure>'
    caption = (f"p={row.prob:.3f}" if row.prob is not None else "no face") + (f" ({row.method})" if row.status == FALLBACK else "")
    img = f'<img alt="{label}" src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}">' if thumb else ""
    return f"<figure>{img}<figcaption>{label}<br>{caption}</figcaption></figure>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render(run: Mapping[str, Any], classes: Mapping[str, Mapping[str, Any]], bar_png: str, trend_png: str | None,
           previous_run: str | None, contact_sheets: Sequence[Sheet], thumbs: Mapping[str, bytes]) -> str:
    """The whole page as one HTML string; every image is an inline data URI. `thumbs` maps a
    photo's source to a JPEG thumbnail of its face."""
    e = html.escape
    meta = "".join(f"<tr><td>{e(k)}</td><td>{e(str(run.get(k) or '-'))}</td></tr>"
                   for k in ("run_id", "run_after", "logical_date", "source_uri", "dest_uri", "engine", "settings_fingerprint"))
    table = "".join(
        f'<tr class="{"all" if name == "all" else ""}"><td>{e(name)}</td><td>{m["images"]}</td><td>{m["detected"]}</td>'
        f'<td>{m["fallback"]}</td><td>{m.get("rescued", 0)}</td><td>{m["errors"]}</td><td>{_pct(m["miss_rate"])}</td>'
        f'<td>{m.get("reused", 0)}</td></tr>'
        for name, m in classes.items()
    )
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>facecrop report {e(run['run_id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>facecrop: detection misses for run {e(run['run_id'])}</h1><table class=meta>{meta}</table>",
        "<h2>Per class</h2><p class=note>miss rate = fallback / (detected + fallback), from the first detection pass; rescued: misses cropped from a second pass or a sibling's box; unreadable photos are errors, not misses.</p>",
        "<table id=per-class><thead><tr><th>class</th><th>images</th><th>detected</th><th>fallback</th><th>rescued</th><th>errors</th>"
        f"<th>miss rate</th><th>reused</th></tr></thead><tbody>{table}</tbody></table>",
        f"<h2>Miss rate, this run{' and the previous one (' + e(previous_run) + ')' if previous_run else ''}</h2>",
        f'<img class=chart alt="miss rate per class" src="{bar_png}">',
    ]
    if trend_png:
        parts.append(f'<h2>Trend over the history</h2><img class=chart alt="miss rate per class over runs" src="{trend_png}">')
    for sheet in contact_sheets:
        more = f" ({sheet.more} more not shown; see manifest.csv)" if sheet.more else ""
        tiles = "".join(_tile(r, thumbs.get(r.source)) for r in sheet.rows) or "<p class=note>none</p>"
        parts.append(f"<h2>{e(sheet.title)}: {len(sheet.rows) + sheet.more}</h2><p class=note>{e(sheet.note)}{more}</p>"
                     f"<div class=sheet>{tiles}</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
