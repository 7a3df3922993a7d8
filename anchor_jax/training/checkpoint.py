"""Checkpoints with orbax: the train state plus a small JSON of run metadata.

Saved every ``train.checkpoint_every`` steps, at the end and on SIGTERM; the
newest ``train.keep_checkpoints`` are kept. Each checkpoint holds the full
``TrainState`` (step, params incl. anchors, BatchNorm statistics, optimiser
state) and ``meta`` (the next data position and the config hash), so that a
resumed run continues bit-for-bit where the killed one stopped.
"""
from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from anchor_jax import workdir as workdir_lib
from anchor_jax.errors import UserError


class CheckpointError(UserError):
  """A checkpoint that cannot be restored into the model of this config."""


class Checkpointer:
  """Thin wrapper over ``ocp.CheckpointManager`` for one workdir."""

  def __init__(self, workdir: str, *, keep: int):
    self.directory = workdir_lib.path(os.path.abspath(workdir), workdir_lib.CHECKPOINTS)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, meta: dict) -> None:
    """Saves host (NumPy) ``state`` and JSON ``meta``; blocks until written."""
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self.manager.wait_until_finished()

  def restore(self, step: int, target):
    """-> (state shaped like ``target``, meta). ``target`` gives the tree structure and
    the shapes: orbax would return a saved array of another shape as it is, so a
    mismatch (e.g. another number of classes) is refused here, naming the arrays."""
    abstract = jax.tree.map(lambda x: np.asarray(x), target)
    fix = ("Delete it to fall back to an older one, or use a new --workdir.")
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax raises many types; name the file and the fix
      raise CheckpointError(
          f"Could not restore checkpoint {step} from {self.directory}: {e}\n"
          "It may be corrupt or from a different config (model size, anchors.num, "
          "classes). " + fix) from e
    wrong = [f"{jax.tree_util.keystr(path)}: checkpoint {np.shape(got)} vs model {np.shape(want)}"
             for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(restored.state),
                                          jax.tree.leaves(abstract))
             if np.shape(got) != np.shape(want)]
    if wrong:
      raise CheckpointError(
          f"Checkpoint {step} in {self.directory} does not fit the model built from this "
          "config (a different number of classes, anchors or width?):\n  " +
          "\n  ".join(wrong[:10]) + "\n" + fix)
    return restored.state, dict(restored.meta)

  def restore_raw(self, step: int) -> dict:
    """The saved state as a plain nested dict (no target needed), e.g. for eval."""
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    return restored.state

  def close(self):
    self.manager.close()
