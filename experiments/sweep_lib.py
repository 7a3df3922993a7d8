"""Loading and checking sweep files (schema: ``experiments/sweeps/__init__.py``)."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re

from anchor_jax import config_lib
from anchor_jax.errors import UserError

NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
DIFF_KINDS = ({"along", "base"}, {"run"})
DEFAULT_METRICS = ("AP50", "AP50_agnostic")   # AP50_agnostic: classes merged (localisation)


class SweepError(UserError, ValueError):
  """A sweep file that cannot run; the message names each problem."""


@dataclasses.dataclass(frozen=True)
class Job:
  """One training run of one seed."""
  name: str
  seed: int
  config: str            # config spec path[:arg]
  overrides: tuple       # base + the run's own + runner extras, "--config.k=v" strings
  workdir: str

  def trainer_args(self) -> list[str]:
    """Arguments of the training CLI after its program name."""
    return [f"--config={self.config}", f"--workdir={self.workdir}",
            f"--config.seed={self.seed}", *self.overrides]


def load(spec: str) -> dict:
  """Loads ``path/to/sweep.py[:arg]`` and returns its checked sweep dict."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise SweepError(f"Sweep file {path!r} not found.")
  module_spec = importlib.util.spec_from_file_location(
      "_sweep_" + re.sub(r"\W", "_", os.path.abspath(path)), path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  sweep = module.get_sweep(arg) if arg else module.get_sweep()
  validate(sweep, where=spec)
  return sweep


def variants(path: str) -> tuple[str, ...]:
  """The ``VARIANTS`` a sweep file declares."""
  module_spec = importlib.util.spec_from_file_location("_sweep_variants", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return tuple(module.VARIANTS)


def normalise(override: str) -> str:
  """``a.b=v`` or ``--config.a.b=v`` -> ``--config.a.b=v``."""
  return "--config." + override.removeprefix("--config.")


def override_key(override: str) -> str:
  return normalise(override).removeprefix("--config.").partition("=")[0]


def validate(sweep: dict, *, where: str = "sweep") -> None:
  """Raises SweepError naming every problem of the schema."""
  errors = []
  for key in ("config", "base", "runs", "table"):
    if key not in sweep:
      errors.append(f"missing key {key!r}")
  if errors:
    raise SweepError(f"{where}: " + "; ".join(errors))
  table = sweep["table"]
  rows, cols = list(table.get("rows", ())), list(table.get("cols", ()))
  names, cells = set(), {}
  for run in sweep["runs"]:
    name = run.get("name", "")
    if not NAME_RE.match(name):
      errors.append(f"run name {name!r} must match {NAME_RE.pattern}")
    if name in names:
      errors.append(f"run name {name!r} is used twice")
    names.add(name)
    for override in [*sweep["base"], *run.get("overrides", ())]:
      if "=" not in override:
        errors.append(f"{name}: override {override!r} must look like --config.key=value")
      elif override_key(override) == "seed":
        errors.append(f"{name}: the runner sets --config.seed; remove {override!r}")
    if ("row" in run) != ("col" in run):
      errors.append(f"{name}: give both 'row' and 'col' or neither")
    elif "row" in run:
      if run["row"] not in rows or run["col"] not in cols:
        errors.append(f"{name}: cell ({run['row']!r}, {run['col']!r}) is not in the table")
      elif (run["row"], run["col"]) in cells:
        errors.append(f"{name}: cell ({run['row']!r}, {run['col']!r}) already holds "
                      f"{cells[(run['row'], run['col'])]!r}")
      else:
        cells[(run["row"], run["col"])] = name
  diff = table.get("diff")
  if diff is not None:
    if set(diff) not in DIFF_KINDS:
      errors.append(f"table.diff {diff!r}: use {{'along': 'cols'|'rows', 'base': label}} "
                    "or {'run': name}")
    elif "run" in diff and diff["run"] not in names:
      errors.append(f"table.diff: no run named {diff['run']!r}")
    elif "along" in diff and diff["base"] not in {"cols": cols, "rows": rows}.get(
        diff["along"], ()):
      errors.append(f"table.diff: {diff['base']!r} is not one of the table's {diff['along']}")
  if errors:
    raise SweepError(f"{where}: " + "; ".join(errors))


def metrics(sweep: dict) -> tuple[str, ...]:
  return tuple(sweep["table"].get("metrics", DEFAULT_METRICS))


def jobs(sweep: dict, *, root: str, seeds, only: str = "", extra=()) -> list[Job]:
  """Every (run, seed) whose name contains ``only``: all runs of the first seed, then
  of the next (a complete one-seed table comes first)."""
  out = []
  for seed in seeds:
    for run in sweep["runs"]:
      if only and only not in run["name"]:
        continue
      overrides = tuple(normalise(o) for o in [*sweep["base"], *run.get("overrides", ()),
                                               *extra])
      out.append(Job(name=run["name"], seed=seed, config=run.get("config", sweep["config"]),
                     overrides=overrides, workdir=run_dir(root, run["name"], seed)))
  return out


def run_dir(root: str, name: str, seed: int) -> str:
  return os.path.join(os.path.abspath(root), name, f"seed{seed}")


def check_configs(job_list) -> None:
  """Applies each job's overrides to its config and validates it (catches typos in
  keys and bad values before anything is launched)."""
  errors, seen = [], set()
  for job in job_list:
    key = (job.config, job.overrides)
    if key in seen:
      continue
    seen.add(key)
    try:
      config_lib.validate(config_lib.load(job.config, [f"--config.seed={job.seed}",
                                                       *job.overrides]))
    except (config_lib.ConfigError, ValueError) as e:
      errors.append(f"{job.name}: {e}")
  if errors:
    raise SweepError("Sweep configs do not load:\n" + "\n".join(errors))
