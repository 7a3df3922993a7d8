"""Launches training runs as subprocesses, a few at a time, and tracks their outcome.

Each job runs ``<trainer> --config=... --workdir=... --config.seed=k <overrides>`` in
its own session (so a Ctrl-C on the terminal reaches the runner only), with stdout and
stderr appended to ``<workdir>/train.log``. A finished job (``DONE``) is skipped; an
unfinished one is simply launched again (the trainer resumes from its checkpoints).
On Ctrl-C or SIGTERM the runner sends SIGTERM to every running trainer (which saves a
checkpoint and exits), waits ``grace_s``, then kills what is left.

With ``pin=True`` the runner's CPUs are split into ``parallel`` disjoint slices and each
trainer runs on a free slice (``sched_setaffinity``). On 2 cores, two at a time, it made
no clear difference to whole runs (experiments/RECIPE.md, "Running runs side by side"):
the trainer's input thread then shares its one core with the step.
"""
from __future__ import annotations

import collections
import datetime
import os
import shlex
import signal
import subprocess
import time

from experiments import workdir as wd

FAILURES = "failures.jsonl"


class Launcher:
  """Runs jobs ``parallel`` at a time; records attempts, DONE markers and failures."""

  def __init__(self, trainer: list[str], *, root: str, parallel: int = 1, env=None,
               grace_s: float = 120.0, poll_s: float = 0.2, log_lines: int = 30,
               echo=print, pin: bool = False):
    self.trainer, self.root, self.parallel = list(trainer), root, max(1, parallel)
    self.env, self.grace_s, self.poll_s = env, grace_s, poll_s
    self.log_lines, self.echo = log_lines, echo
    self.counts = collections.Counter()
    self.running, self.total = {}, 0
    self.slices = cpu_slices(sorted(os.sched_getaffinity(0)), self.parallel) if pin else None
    self.slice_of = {}   # running index -> the number of its CPU slice

  def command(self, job) -> list[str]:
    return [*self.trainer, *job.trainer_args()]

  def run(self, jobs) -> collections.Counter:
    """Runs every unfinished job; returns counts of done / failed / skipped.

    Raises KeyboardInterrupt after stopping the running trainers when interrupted; any
    other error also stops them first, so no trainer outlives the runner.
    """
    pending = collections.deque(enumerate(jobs, 1))
    self.running = {}   # index -> (job, Popen, log file, start time)
    self.total = len(jobs)
    try:
      while pending or self.running:
        while pending and len(self.running) < self.parallel:
          index, job = pending.popleft()
          if wd.status(job.workdir) == wd.STATUS_DONE:
            self._skip(index, job)
          else:
            self._start(index, job)
        for index in list(self.running):
          job, proc, log, start = self.running[index]
          if proc.poll() is not None:
            del self.running[index]
            self._finish(index, job, proc, log, start, interrupted=False)
        if self.running:
          time.sleep(self.poll_s)
    except BaseException:
      self._stop_all()
      raise
    return self.counts

  def _skip(self, index, job):
    self.counts["skipped"] += 1
    self.echo(f"[{index}/{self.total}] skip {job.name} seed{job.seed}: finished")
    finished_by = [a for a in wd.attempts(job.workdir) if not a.get("failed")]
    if finished_by and finished_by[-1].get("command") != shlex.join(self.command(job)):
      self.echo(f"  note: it finished under another command ({finished_by[-1]['command']}); "
                f"delete {job.workdir} to train it again")

  def _start(self, index, job):
    os.makedirs(job.workdir, exist_ok=True)
    cmd = self.command(job)
    resume = wd.status(job.workdir) != wd.STATUS_MISSING
    log = open(os.path.join(job.workdir, wd.LOG), "a")  # noqa: SIM115 (closed in _finish)
    log.write(f"=== experiments.run {_now()}: {'resume' if resume else 'launch'}: "
              f"{shlex.join(cmd)}\n")
    log.flush()
    self.echo(f"[{index}/{self.total}] {'resume' if resume else 'start'} {job.name} "
              f"seed{job.seed}")
    before = wd.attempts(job.workdir)
    if before and before[-1].get("command") != shlex.join(cmd):
      self.echo(f"  note: the last attempt ran another command ({before[-1]['command']}); "
                "the trainer refuses a checkpoint of a different model shape")
    start = time.monotonic()
    cpus = self._take_slice(index)
    try:
      proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                              start_new_session=True)
    except OSError as e:   # trainer not found / not executable
      self.slice_of.pop(index, None)
      log.write(f"cannot start the trainer: {e}\n")
      log.close()
      self._record(job, cmd, start, rc=127, interrupted=False, reason=f"cannot start: {e}")
      return
    if cpus is not None:
      _pin(proc, cpus)
    self.running[index] = (job, proc, log, start)

  def _finish(self, index, job, proc, log, start, *, interrupted):
    """Marks the job DONE when the trainer exited 0 after its final eval; otherwise
    records the attempt as interrupted (by us) or failed."""
    log.close()
    self.slice_of.pop(index, None)
    rc, cmd = proc.returncode, proc.args
    final = wd.final_eval(job.workdir) if rc == 0 else None
    if final is not None:
      wd.mark_done(job.workdir, final)
      wall = self._record(job, cmd, start, rc=rc, interrupted=False)
      self.counts["done"] += 1
      self.echo(f"[{index}/{self.total}] done {job.name} seed{job.seed}: "
                f"AP50 {_pct(final.get('AP50'))} in {wall:.0f} s")
    elif interrupted:
      self._record(job, cmd, start, rc=rc, interrupted=True)
      self.echo(f"[{index}/{self.total}] stopped {job.name} seed{job.seed} (rc {rc}); "
                "rerun to resume")
    else:
      reason = (f"exit code {rc}" if rc != 0 else
                "exit code 0 but no eval.jsonl line at the final step")
      self._record(job, cmd, start, rc=rc, interrupted=False, reason=reason)

  def _take_slice(self, index):
    """A CPU slice no running trainer holds (None when not pinning)."""
    if self.slices is None:
      return None
    held = set(self.slice_of.values())
    free = next(k for k in range(len(self.slices)) if k not in held)
    self.slice_of[index] = free
    return self.slices[free]

  def _record(self, job, cmd, start, *, rc, interrupted, reason=None) -> float:
    """Appends the attempt to the workdir (and a failure to DIR/failures.jsonl)."""
    wall = time.monotonic() - start
    failed = reason is not None
    wd.append_jsonl(os.path.join(job.workdir, wd.ATTEMPTS), {
        "end": _now(), "wall_s": round(wall, 2), "rc": rc, "interrupted": interrupted,
        "failed": failed, "command": shlex.join(cmd)})
    if failed:
      self.counts["failed"] += 1
      tail = wd.log_tail(job.workdir, self.log_lines)
      wd.append_jsonl(os.path.join(self.root, FAILURES), {
          "name": job.name, "seed": job.seed, "workdir": job.workdir, "rc": rc,
          "reason": reason, "time": _now(), "log_tail": tail})
      self.echo(f"  FAILED {job.name} seed{job.seed}: {reason}; last lines of "
                f"{os.path.join(job.workdir, wd.LOG)}:\n    " + "\n    ".join(tail[-5:]))
    return wall

  def _stop_all(self):
    """SIGTERM to every running trainer, SIGKILL after ``grace_s``; records them."""
    running = self.running
    if not running:
      return
    self.echo(f"interrupted: stopping {len(running)} run(s) (SIGTERM, then SIGKILL after "
              f"{self.grace_s:.0f} s)")
    for _, proc, _, _ in running.values():
      _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + self.grace_s
    try:
      while any(p.poll() is None for _, p, _, _ in running.values()) and \
          time.monotonic() < deadline:
        time.sleep(self.poll_s)
    except KeyboardInterrupt:
      self.echo("second interrupt: killing the runs now")
    for _, proc, _, _ in running.values():
      if proc.poll() is None:
        _signal_group(proc, signal.SIGKILL)
      proc.wait()
    for index, (job, proc, log, start) in sorted(running.items()):
      self._finish(index, job, proc, log, start, interrupted=True)
    running.clear()


def cpu_slices(cpus: list[int], parallel: int) -> list[list[int]]:
  """``cpus`` split into ``parallel`` disjoint, near-equal, contiguous slices; with fewer
  CPUs than slices, slices share CPUs round-robin (each gets one)."""
  if len(cpus) < parallel:
    return [[cpus[i % len(cpus)]] for i in range(parallel)]
  bounds = [round(i * len(cpus) / parallel) for i in range(parallel + 1)]
  return [cpus[bounds[i]:bounds[i + 1]] for i in range(parallel)]


def _pin(proc, cpus) -> None:
  """Restricts the just-started trainer to ``cpus``. Set from here rather than in a
  ``preexec_fn`` (which would make Popen fork a multithreaded JAX process): Popen returns
  once the child has exec'd, before the new interpreter starts any thread, and the threads
  it starts later inherit the mask."""
  try:
    os.sched_setaffinity(proc.pid, cpus)
  except ProcessLookupError:   # it already exited; _finish records how
    pass


def _signal_group(proc, sig) -> None:
  """Signals the trainer's own process group (it was started in a new session)."""
  try:
    os.killpg(proc.pid, sig)
  except ProcessLookupError:
    pass


def _now() -> str:
  return datetime.datetime.now().isoformat(timespec="seconds")


def _pct(value) -> str:
  return "n/a" if value is None else f"{100 * value:.2f}"


def read_failures(root: str) -> list[dict]:
  return wd.read_jsonl(os.path.join(root, FAILURES))


def describe(job, cmd) -> str:
  """One line of a dry run: what would happen to the job, and its command."""
  action = {wd.STATUS_DONE: "skip (finished)", wd.STATUS_MISSING: "start"}.get(
      wd.status(job.workdir), "resume")
  return f"{action:16s} {shlex.join(cmd)}"
