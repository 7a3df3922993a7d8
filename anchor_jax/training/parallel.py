"""Everything about devices and hosts: distributed start-up, replication, sharding.

Training is data-parallel with ``jax.pmap`` over the local devices, axis name
``'batch'``; with several processes (``jax.distributed.initialize``) the pmap
axis spans the devices of all processes, so ``psum``/``pmean`` and the
BatchNorm statistics are global.
"""
from __future__ import annotations

import os

import jax
import numpy as np

AXIS = "batch"


def initialize_distributed(*, coordinator: str = "", num_processes: int = 0,
                           process_id: int = -1) -> None:
  """Starts JAX's multi-host runtime when a coordinator is given (flag or env).

  Env fallbacks: ``ANCHOR_JAX_COORDINATOR``, ``ANCHOR_JAX_NUM_PROCESSES``,
  ``ANCHOR_JAX_PROCESS_ID``. On CPU the cross-process collectives use gloo.
  Nothing happens for a single process.
  """
  coordinator = coordinator or os.environ.get("ANCHOR_JAX_COORDINATOR", "")
  num_processes = num_processes or int(os.environ.get("ANCHOR_JAX_NUM_PROCESSES", "0"))
  if process_id < 0:
    process_id = int(os.environ.get("ANCHOR_JAX_PROCESS_ID", "-1"))
  if not coordinator:
    return
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ValueError(
        f"Multi-host start needs --num_processes >= 1 and 0 <= --process_id < num_processes "
        f"(got coordinator={coordinator!r}, num_processes={num_processes}, "
        f"process_id={process_id}).")
  if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id)


def replicate(tree):
  """Host tree -> one copy per local device (leading axis = local devices).

  Placed by a pmapped identity, so the arrays carry exactly the sharding that
  pmap outputs and the first train step does not compile twice.
  """
  n = jax.local_device_count()
  stacked = jax.tree.map(lambda x: np.stack([np.asarray(x)] * n), tree)
  return jax.pmap(lambda x: x, axis_name=AXIS)(stacked)


def unreplicate(tree):
  """Replicated tree -> host NumPy tree (this process's first device copy).

  Reads the local shard directly: with several processes a pmapped output is a
  global array, and indexing it (``x[0]``) would start a cross-process
  computation that the other processes are not part of.
  """
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], tree)   # shard [1, ...]


def shard(batch: dict) -> dict:
  """Host batch [B_local, ...] -> [devices, B_local / devices, ...]."""
  n = jax.local_device_count()

  def split(x):
    if x.shape[0] % n:
      raise ValueError(f"Per-process batch {x.shape[0]} does not divide over {n} local "
                       "devices; choose train.batch_size divisible by the device count.")
    return np.reshape(x, (n, x.shape[0] // n) + x.shape[1:])
  return jax.tree.map(split, batch)
