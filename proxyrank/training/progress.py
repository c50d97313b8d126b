"""How far a training stage is, and when it will be done: a bar on a terminal, a few lines in a log.

A stage of many runs (a recipe's 48 proxies) shows a tqdm bar with the runs done, the rate and the
time left when stderr is a terminal; in a log (CI, Slurm, `dvc repro > log`) it prints a line at
every tenth of its runs, with the same ETA, so a log has at most ten lines per stage rather than
one per run. A single long run (a reference at paper scale trains for days) prints a heartbeat
from inside its loop every HEARTBEAT_S seconds: step, tokens per second and its own ETA; the
default study's runs take seconds and never print one.
"""
from __future__ import annotations

import sys
import time

HEARTBEAT_S = 300.0  # seconds between a long run's lines: one every 5 minutes keeps a week-long log short


def duration(seconds: float) -> str:
    """3 s, 4m05s, 2h07m, 3d04h: what a person reads at a glance."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


class StageProgress:
    """Runs of one stage as they finish (in any order): `update(line)` after each, `close()` at the end."""

    def __init__(self, label: str, total: int, done: int = 0, stream=None, quiet: bool = False):
        self.label, self.total, self.done, self.trained, self.quiet = label, total, done, 0, quiet
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.every = max(1, (total - done) // 10)
        self.bar = None
        if not quiet and self.stream.isatty() and total > done:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=label, unit="run", file=self.stream,
                            dynamic_ncols=True, leave=False)

    def eta(self) -> float:
        """Seconds left: this stage's mean time per run trained so far, times the runs left."""
        elapsed = time.perf_counter() - self.start
        return elapsed / self.trained * (self.total - self.done) if self.trained else float("nan")

    def update(self, line: str) -> None:
        self.done, self.trained = self.done + 1, self.trained + 1
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(line, refresh=False)
            self.bar.update(1)
        elif self.trained % self.every == 0 or self.done == self.total:
            print(f"  {self.label} [{self.done}/{self.total}] {line}; "
                  f"{'done' if self.done == self.total else 'about ' + duration(self.eta()) + ' left'}",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Heartbeat:
    """Inside one run's loop: `tick(step)` prints step, tokens/s and ETA at most every HEARTBEAT_S."""

    def __init__(self, run_id: str, first_step: int, steps: int, tokens_per_step: int, every: float = HEARTBEAT_S):
        self.run_id, self.first, self.steps, self.tokens_per_step, self.every = (run_id, first_step, steps,
                                                                                  tokens_per_step, every)
        self.start = self.last = time.perf_counter()

    def tick(self, step: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or step <= self.first:
            return
        self.last = now
        rate = (step - self.first) / (now - self.start)
        print(f"  {self.run_id}: step {step:,}/{self.steps:,} ({step / self.steps:.0%}), "
              f"{rate * self.tokens_per_step:,.0f} tokens/s, about {duration((self.steps - step) / rate)} left",
              file=sys.stderr, flush=True)
