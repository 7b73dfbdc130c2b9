"""What a person sees while a long command runs.

On a terminal, a bar with the count, the rate and the time left (``rich``,
imported only here, so ``grade`` never pays for it).  Elsewhere (a CI log, a
pipe), one plain line every 10% of the work or 15 seconds, whichever comes
first, so a log shows the run moving without a line per submission.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, *, stream=None) -> None:
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last_line = self.started
        self._bar = None
        if total and self.stream.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            from rich.console import Console

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"),
                            TimeRemainingColumn(), console=Console(file=self.stream), transient=False)
            self._task = self._bar.add_task(label, total=total, rate="")
            self._bar.start()

    def advance(self, note: str = "") -> None:
        self.done += 1
        now = time.monotonic()
        rate = self.done / max(now - self.started, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, rate=f"{rate:.1f}/s")
            return
        step = max(1, self.total // 10)
        if self.done == self.total or self.done % step == 0 or now - self._last_line >= 15:
            self._last_line = now
            left = (self.total - self.done) / rate if rate > 0 else 0.0
            print(f"{self.label}: {self.done}/{self.total} ({rate:.1f}/s, about {left:.0f} s left)"
                  + (f" {note}" if note else ""), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def step(message: str, *, stream=None) -> None:
    """One line saying what a long command is doing now."""
    print(message, file=stream or sys.stderr, flush=True)
