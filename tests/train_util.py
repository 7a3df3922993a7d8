"""Helpers shared by the training tests: tiny configs, in-process runs, params."""
import os
import subprocess
import sys

import jax
import numpy as np

from anchor_jax import config_lib
from anchor_jax.training import checkpoint, parallel, train
from tests import REPO


def tiny_config(**overrides):
  """configs/synthetic.py:tiny with dotted-key overrides, e.g. {'train.steps': 6}."""
  config = config_lib.load(os.path.join(REPO, "configs/synthetic.py:tiny"))
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def restore_params(workdir, config):
  """Host params and batch stats of the latest checkpoint in ``workdir``."""
  import orbax.checkpoint as ocp  # noqa: PLC0415 -- only this helper reads raw checkpoints
  ckpt = checkpoint.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  step = ckpt.latest_step()
  restored = ckpt.manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  ckpt.close()
  return step, restored.state


def train_tiny(workdir, **overrides):
  """Trains ``tiny_config(**overrides)`` in-process into ``workdir``.
  -> (train summary, restored step, restored {"params", "batch_stats", ...})."""
  summary = train.train_and_evaluate(tiny_config(**overrides), workdir)
  step, state = restore_params(workdir, tiny_config(**overrides))
  return summary, step, state


def run_pmapped(state, step_fn, batch, num_devices: int, steps: int = 2):
  """``steps`` steps of ``step_fn`` pmapped over the first ``num_devices`` local devices
  from host ``state`` on host ``batch`` (split over the devices) -> host (state, metrics)
  of device 0."""
  devices = jax.local_devices()[:num_devices]
  p_step = jax.pmap(step_fn, axis_name=parallel.AXIS, devices=devices)
  rep = jax.tree.map(lambda x: np.stack([np.asarray(x)] * num_devices), state)
  sharded = jax.tree.map(lambda x: x.reshape((num_devices, -1) + x.shape[1:]), batch)
  for _ in range(steps):
    rep, metrics = p_step(rep, sharded)
  return jax.device_get(jax.tree.map(lambda x: x[0], (rep, metrics)))


def assert_trees_close(a, b, *, rtol=1e-5, atol=1e-6):
  leaves_a = jax.tree_util.tree_leaves_with_path(a)
  leaves_b = jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for (path, x), y in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


def main_cmd(workdir, *flags, config="configs/synthetic.py:tiny"):
  return [sys.executable, "-m", "anchor_jax.main", f"--config={config}",
          f"--workdir={workdir}", *flags]


def subprocess_env(devices=4, **extra):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  env.update({k: str(v) for k, v in extra.items()})
  return env


def run_main(workdir, *flags, devices=4, timeout=600, **env):
  return subprocess.run(main_cmd(workdir, *flags), cwd=REPO, env=subprocess_env(devices, **env),
                        capture_output=True, text=True, timeout=timeout)
