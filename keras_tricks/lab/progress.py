"""Progress of a series of trainings, on standard error.

On a terminal, a live `rich` progress bar (elapsed time, ETA, the run and
epoch in progress); otherwise (a log file, CI, a pipe) one plain line per
finished run with the elapsed time and the ETA, and no carriage-return
frames.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


def _clock(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Reports training progress in epochs: `start`, `epoch`, `run_done`.

    Args:
        stream: where to write. Defaults to `None` (`sys.stderr`).
        live: draw a live bar. Defaults to `None` (when `stream` is a
            terminal).

    Example:

    >>> import io
    >>> stream = io.StringIO()
    >>> with Progress(stream) as progress:
    ...     progress.start(2)
    ...     progress.epoch("deep: reference, seed 0, epoch 1/2")
    ...     progress.run_done("deep: reference, seed 0: dev accuracy 0.500", 1)
    >>> stream.getvalue().startswith("[run 1, 2/2 epochs] deep: reference")
    True
    """

    def __init__(self, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.total = 0
        self.done = 0
        self.runs = 0
        self._bar: Any = None
        self._task: Any = None
        self._start = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, total_epochs: int) -> None:
        """Begins; `total_epochs` is the most epochs all runs together can take."""
        self.total = max(int(total_epochs), 1)
        self._start = time.monotonic()
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("epochs"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
            )
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self.total)

    def epoch(self, description: str) -> None:
        """One epoch finished; `description` names the run and the epoch."""
        self.done = min(self.done + 1, self.total)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=description)

    def run_done(self, description: str, skipped: int = 0) -> None:
        """A run finished; `skipped` epochs it did not need (early stop)."""
        self.done = min(self.done + int(skipped), self.total)
        self.runs += 1
        elapsed = time.monotonic() - self._start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            self._bar.console.print(description)
            return
        self.stream.write(
            f"[run {self.runs}, {self.done}/{self.total} epochs] "
            f"{description}  (elapsed {_clock(elapsed)}, ETA {_clock(eta)})\n"
        )
        self.stream.flush()

    def close(self) -> None:
        """Stops the live bar, if any."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
