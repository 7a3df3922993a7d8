"""Checkpoints with orbax: the train state plus a small JSON of run metadata.

Saved every ``train.checkpoint_every`` steps, at the end and on SIGTERM/SIGINT; the
newest ``train.keep_checkpoints`` are kept. Each checkpoint holds the full ``TrainState``
(step, params incl. anchors, BatchNorm statistics, optimiser state) and ``meta``: the next
data position, the structural config keys, the whole resolved config, the class names and
a SHA-256 of the state's arrays, so that a resumed run continues bit-for-bit where the
killed one stopped and a damaged checkpoint is never trained on.

Restoring takes the newest checkpoint that reads back whole: the metadata first (a
config change is reported by key before any array is read), then the arrays, then the
checksum. A checkpoint that fails is moved aside to ``<step>.unreadable`` (never deleted)
with a warning, and the next older one is tried.
"""
from __future__ import annotations

import errno
import hashlib
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from anchor_jax import workdir as workdir_lib
from anchor_jax.errors import UserError

UNREADABLE_SUFFIX = ".unreadable"


class CheckpointError(UserError):
  """A checkpoint that cannot be written, or none that can be restored."""


def _key(entry) -> str:
  """A path entry as orbax names it on disk (dict key, attribute or index)."""
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return str(getattr(entry, attr))
  return str(entry)


def state_checksum(state) -> str:
  """SHA-256 over every array of a state tree: dtype, shape and bytes, leaves sorted by
  their path, so a dataclass state and the plain dict orbax restores it as agree."""
  leaves = sorted(("/".join(_key(k) for k in path), leaf)
                  for path, leaf in jax.tree_util.tree_leaves_with_path(state))
  digest = hashlib.sha256()
  for name, leaf in leaves:
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


class Checkpointer:
  """Thin wrapper over ``ocp.CheckpointManager`` for one workdir."""

  def __init__(self, workdir: str, *, keep: int, create: bool = True, move_aside: bool = True):
    """``move_aside``: rename unreadable checkpoints (process 0 only, in multi-host runs:
    the others skip them the same way without touching the files)."""
    self.may_move = move_aside
    self.directory = workdir_lib.path(os.path.abspath(workdir), workdir_lib.CHECKPOINTS)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=create),
        item_names=("state", "meta"))

  def steps(self) -> list[int]:
    """Saved steps, newest first."""
    return sorted(self.manager.all_steps(), reverse=True)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, meta: dict) -> None:
    """Saves host (NumPy) ``state`` and JSON ``meta`` (plus the state's checksum); blocks
    until written. A failed write (a full disk, say) raises CheckpointError naming the
    intact checkpoints."""
    meta = {**meta, "checksum": state_checksum(state)}
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
      self.manager.wait_until_finished()
    except Exception as e:  # orbax wraps OS errors in many types; name the cause
      intact = [s for s in self.steps() if s != step]
      cause = _os_cause(e)
      raise CheckpointError(
          f"could not write checkpoint {step} to {self.directory}: {cause}. Intact "
          f"checkpoints: {intact or 'none'} (a resumed run starts from the newest)") from e

  def read_meta(self, step: int) -> dict:
    """The JSON metadata of checkpoint ``step`` (no arrays are read)."""
    restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored.meta)

  def restore(self, step: int, target):
    """-> (state shaped like ``target``, meta); raises on a damaged checkpoint.

    ``target`` gives the tree structure and the shapes (orbax would return a saved array of
    another shape as it is). The checksum saved with the state must match.
    """
    abstract = jax.tree.map(lambda x: np.asarray(x), target)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    meta = dict(restored.meta)
    wrong = [f"{jax.tree_util.keystr(path)}: checkpoint {np.shape(got)} vs model {np.shape(want)}"
             for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(restored.state),
                                          jax.tree.leaves(abstract))
             if np.shape(got) != np.shape(want)]
    if wrong:
      raise CheckpointError(
          f"checkpoint {step} in {self.directory} does not fit this model (another config "
          f"made it): " + "; ".join(wrong[:5]) + ". Use a new --workdir, or the config "
          "that wrote it.")
    _check_sum(restored.state, meta)
    return restored.state, meta

  def restore_raw(self, step: int):
    """(the saved state as a plain nested dict, meta), checksum verified: for eval."""
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    meta = dict(restored.meta)
    _check_sum(restored.state, meta)
    return restored.state, meta

  def move_aside(self, step: int, reason: str) -> str:
    """Renames checkpoint ``step`` to ``<step>.unreadable`` (kept, never deleted)."""
    source = os.path.join(self.directory, str(step))
    target = source + UNREADABLE_SUFFIX
    n = 1
    while os.path.exists(target):
      target, n = f"{source}{UNREADABLE_SUFFIX}.{n}", n + 1
    os.rename(source, target)
    self.manager.reload()
    logging.warning("Checkpoint %d in %s is unreadable (%s): moved to %s; trying the next "
                    "older one.", step, self.directory, reason, target)
    return target

  def newest_readable(self, restore_one):
    """``restore_one(step)`` for the newest step that restores; each that fails with a
    read or checksum error is moved aside. None when there is no checkpoint;
    CheckpointError when every one failed."""
    moved = []
    for step in self.steps():
      try:
        return restore_one(step)
      except (UserError, KeyboardInterrupt):
        raise
      except Exception as e:  # orbax raises many types for damaged files
        if self.may_move:
          moved.append(self.move_aside(step, _short(e)))
        else:
          moved.append(f"{step} (left in place)")
          logging.warning("Checkpoint %d in %s is unreadable (%s); trying the next older one.",
                          step, self.directory, _short(e))
    if moved:
      raise CheckpointError(
          f"no checkpoint in {self.directory} can be read (moved aside: "
          f"{', '.join(os.path.basename(m) for m in moved)}). Move one back if it is "
          "fine, or use a new --workdir.")
    return None

  def close(self):
    self.manager.close()


def _check_sum(state, meta: dict) -> None:
  saved = meta.get("checksum")
  if saved is not None and saved != state_checksum(state):
    raise ValueError("checksum mismatch: the arrays changed on disk after they were saved")


def _short(error: Exception) -> str:
  lines = [line for line in str(error).splitlines() if line.strip()]
  return (lines[0] if lines else type(error).__name__)[:200]


def _os_cause(error: BaseException) -> str:
  """The OS error behind an orbax exception (e.g. 'No space left on device'), else its
  first line."""
  seen = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno is not None:
      return os.strerror(seen.errno)
    if "RESOURCE_EXHAUSTED" in str(seen) or "No space left" in str(seen):
      return os.strerror(errno.ENOSPC)
    seen = seen.__cause__ or seen.__context__
  return _short(error)
