"""Progress lines for long work (count, rate, ETA), throttled so logs stay readable."""

from __future__ import annotations

import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Call `advance(n)` as items finish; a line is emitted at most every `every` seconds,
    and always for the last item."""

    def __init__(
        self,
        total: int,
        emit: Callable[[str], None],
        *,
        label: str = "photos",
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self._emit = emit
        self._label = label
        self._every = every
        self._clock = clock
        self._start = clock()
        self._last = self._start

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self._clock()
        if self.done >= self.total or now - self._last >= self._every:
            self._last = now
            self._emit(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (self._clock() if now is None else now) - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = self.done / self.total if self.total else 1.0
        if self.done >= self.total:
            tail = f"done in {format_duration(elapsed)}"
        elif rate > 0:
            tail = f"ETA {format_duration((self.total - self.done) / rate)}"
        else:
            tail = "ETA unknown"
        return f"{self.done}/{self.total} {self._label} ({pct:.0%}), {rate:.1f} {self._label}/s, {tail}"
