"""The live progress bars of a terminal (rich): one bar per stage with done/total, failures, rate and ETA, and a
footer with tokens and cost. Loaded only by the commands that draw them (`distill`, `progress --watch`)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from treedistill.server.cli.progress import job_kinds, kind_extras, totals
from treedistill.server.models import JobProgress


class _StageProgress(Progress):
    """rich Progress with a footer line under the bars."""

    footer: RenderableType = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield self.footer


class LiveProgress:
    """Live bars per stage (done/total, failures, per-stage rate and ETA) and a footer with tokens."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._bars = _StageProgress(
            TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"), TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, refresh_per_second=4,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bars.stop()

    def note(self, text: str) -> None:
        self._bars.console.print(text)

    def update(self, progress: JobProgress, *, now: bool = False) -> None:
        for name, kind in job_kinds(progress):
            extra = kind_extras(kind)
            if name not in self._tasks and not kind.total:
                continue  # nothing of this kind planned (e.g. --no-answer): no empty bar
            if name not in self._tasks:
                # Start at the current count so a resumed job's rate is not inflated by earlier work.
                self._tasks[name] = self._bars.add_task(name, total=kind.total or None, completed=kind.done,
                                                        extra=extra, rate="")
                continue
            task_id = self._tasks[name]
            self._bars.update(task_id, total=kind.total or None, completed=kind.done, extra=extra,
                              rate=_rate(self._bars, task_id))
        self._bars.footer = Text(f"job {progress.job_id} {progress.stage} · {totals(progress)}", style="dim")
        if now:
            self._bars.refresh()


def _rate(bars: Progress, task_id: TaskID) -> str:
    speed = next(task.speed for task in bars.tasks if task.id == task_id)
    return f"{speed * 60:.0f}/min" if speed else ""
