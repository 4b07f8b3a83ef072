"""The one progress bar: rich, on stderr, with count, rate and ETA — or nothing at all.

    with progress_bar(enabled, total, "translating") as bar:
        bar(n)          # n more done
        bar.set(done)   # done so far
`enabled=None` shows it on a terminal only; `total=None` when the count is not known.
"""

from __future__ import annotations

import sys

__all__ = ["progress_bar"]


class progress_bar:
    def __init__(self, enabled: bool | None, total: int | None, label: str, *, unit: str = "",
                 transient: bool = True) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.label, self.unit, self.transient = total, label, unit, transient

    def __enter__(self) -> "progress_bar":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                               console=Console(stderr=True), transient=self.transient)
            self._p.start()
            self._task = self._p.add_task(self.label, total=self.total, rate="")
        return self

    def __call__(self, n: int) -> None:
        if self.enabled:
            self._p.advance(self._task, n)
            self._rate()

    def set(self, done: int) -> None:
        if self.enabled:
            self._p.update(self._task, completed=done)
            self._rate()

    def _rate(self) -> None:
        speed = self._p.tasks[self._task].speed
        if speed:
            unit = f" {self.unit}" if self.unit else ""
            self._p.update(self._task, rate=f"{speed:.2f}{unit}/s" if speed < 10 else f"{speed:,.0f}{unit}/s")

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._p.stop()
