"""How the CLI shows a job's progress: the text of it (lines, totals, costs) and plain lines anywhere; the live
rich bars of a terminal are in `live_progress`, loaded only by the commands that draw them."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from treedistill.server.models import BatchProgress, JobProgress, KindProgress

STAGES = ("tags", "questions", "answers")


def duration(seconds: float | None) -> str:
    """'1h02m', '3m05s', '42s', or '?' when unknown."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def kind_extras(kind: KindProgress) -> str:
    """'2 in flight, 1 failed' (empty when neither)."""
    extras = [f"{kind.in_flight} in flight"] if kind.in_flight else []
    extras += [f"{kind.failed} failed"] if kind.failed else []
    return ", ".join(extras)


def kind_summary(name: str, kind: KindProgress) -> str:
    """'answers 7/18 (2 in flight, 1 failed)'."""
    extras = kind_extras(kind)
    return f"{name} {kind.done}/{kind.total}" + (f" ({extras})" if extras else "")


def cost_text(cost: float | None) -> str:
    """'$0.0123', or 'unknown' when a model's price is unknown."""
    return "unknown" if cost is None else f"${cost:.4f}"


def totals(progress: JobProgress) -> str:
    """'31 calls/min · tokens 1,234 in / 567 out · elapsed 12s · ETA 4s'."""
    parts = [f"{progress.calls_per_minute:g} calls/min",
             f"tokens {progress.input_tokens:,} in / {progress.output_tokens:,} out"]
    parts.append(f"cost {cost_text(progress.cost)}")
    parts.append(f"elapsed {duration(progress.elapsed_seconds)}")
    if progress.status == "running":
        parts.append(f"ETA {duration(progress.eta_seconds)}")
    if progress.retries:
        parts.append(f"{progress.retries} retries ({progress.rate_limited} rate-limited)")
    if progress.pacing and progress.status == "running":
        parts.append(progress.pacing)
    if progress.batches is not None:
        parts.append(batch_summary(progress.batches))
    return " · ".join(parts)


def batch_summary(batches: BatchProgress) -> str:
    """'batches 2 in progress / 3 ended (oldest 4m) · requests 40 waiting, 800 in flight, 1,200 done'."""
    text = (f"batches {batches.batches_in_progress + batches.batches_submitting} in progress / "
            f"{batches.batches_ended} ended")
    if batches.oldest_batch_age_seconds is not None:
        text += f" (oldest {duration(batches.oldest_batch_age_seconds)})"
    retried = batches.requests_errored + batches.requests_expired
    text += (f" · requests {batches.requests_waiting:,} waiting, {batches.requests_in_flight:,} in flight, "
             f"{batches.requests_succeeded:,} done" + (f", {retried:,} errored or expired" if retried else ""))
    if batches.expected_cost is not None:
        text += f" · expected batch cost {cost_text(batches.expected_cost)}"
    return text


def job_kinds(progress: JobProgress) -> list[tuple[str, KindProgress]]:
    """The job's kinds of output with their counts: tags, questions, answers, and pairs for a preference job."""
    return [(name, kind) for name in (*STAGES, "pairs") if (kind := getattr(progress, name)) is not None]


def progress_line(progress: JobProgress) -> str:
    """One line with everything: status, stage, per-kind counts, rate, tokens, ETA."""
    stage = f" ({progress.stage})" if progress.stage != progress.status else ""
    kinds = " · ".join(kind_summary(name, kind) for name, kind in job_kinds(progress))
    return f"job {progress.job_id} {progress.status}{stage} · {kinds} · {totals(progress)}"


def final_summary(progress: JobProgress) -> list[str]:
    """What a finished (or stopped) job made, and its errors."""
    lines = [f"Job {progress.job_id} {progress.status} after {duration(progress.elapsed_seconds)}: "
             + ", ".join(f"{kind.done} {name}" for name, kind in job_kinds(progress)) + "; "
             f"{progress.calls_done} calls done, {progress.calls_failed} failed; "
             f"tokens {progress.input_tokens:,} in / {progress.output_tokens:,} out; cost {cost_text(progress.cost)}."]
    lines += [f"  error: {error}" for error in progress.recent_errors]
    return lines


class ProgressView(Protocol):
    def __enter__(self) -> ProgressView: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def note(self, text: str) -> None: ...

    def update(self, progress: JobProgress, *, now: bool = False) -> None:
        """Show the job's state; `now` skips the rate limit on redraws (for the first and the last state)."""


class PlainProgress:
    """Prints a progress line when something changed, at most once per `interval` seconds."""

    def __init__(self, out: TextIO | None = None, interval: float = 2.0) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self._last_state: tuple = ()
        self._last_time = 0.0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def update(self, progress: JobProgress, *, now: bool = False) -> None:
        state = _settled_state(progress)
        due = now or time.monotonic() - self._last_time >= self.interval
        if state != self._last_state and due:
            print(progress_line(progress), file=self.out, flush=True)
            self._last_state, self._last_time = state, time.monotonic()


def _settled_state(progress: JobProgress) -> tuple:
    """What changes only when work settles (not elapsed time or ETA)."""
    return (progress.status, progress.stage,
            *((kind.done, kind.total, kind.failed) for _, kind in job_kinds(progress)))


def progress_view(plain: bool = False) -> ProgressView:
    """Live bars when stdout is a terminal (unless `plain`), plain lines otherwise."""
    if sys.stdout.isatty() and not plain:
        from treedistill.server.cli.live_progress import LiveProgress  # rich: only when bars are drawn

        return LiveProgress()
    return PlainProgress()
