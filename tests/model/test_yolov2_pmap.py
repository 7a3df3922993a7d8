"""Cross-device BatchNorm: pmapped train-mode outputs equal one device on the whole batch.

Needs 4 CPU devices. XLA_FLAGS is set below before jax is imported; when another test
file has already started jax's backend with fewer devices, the check reruns this file in
a subprocess (``__main__``) with the flag set.
"""
import os

_FLAG = "--xla_force_host_platform_device_count=4"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()

import subprocess  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from anchor_jax.model.yolov2 import YOLOv2  # noqa: E402
from tests import REPO  # noqa: E402

NUM_DEVICES = 4


def _random_variables(model, x, rng):
  """Variables with the model's shapes filled by NumPy (no XLA init compile): kernels
  ~ N(0, 1 / fan_in), biases 0, scales 1, running stats (0, 1), anchors log(1)."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)

  def fill(path, leaf):
    name = path[-1].key
    if name == "kernel":
      fan_in = int(np.prod(leaf.shape[:-1]))
      return rng.standard_normal(leaf.shape, np.float32) / np.sqrt(fan_in)
    return np.full(leaf.shape, 1.0 if name in ("scale", "var") else 0.0, np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def check_pmap_matches_single_device():
  """Raises AssertionError unless sharded BN (axis 'batch') matches unsharded BN."""
  devices = jax.local_devices()[:NUM_DEVICES]
  assert len(devices) == NUM_DEVICES, jax.local_devices()
  options = dict(num_classes=3, anchors=((1.0, 2.0), (4.0, 3.0)), width=0.125,
                 backbone="tiny", bn_no_shift=True)
  synced = YOLOv2(bn_axis_name="batch", **options)
  local = YOLOv2(bn_axis_name=None, **options)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((8, 64, 64, 3), np.float32)
  variables = _random_variables(local, x[:1], rng)
  def apply(model):
    return lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])

  want, want_stats = jax.jit(apply(local))(variables, x)
  replicated = jax.tree.map(lambda a: np.stack([a] * NUM_DEVICES), variables)
  shards = x.reshape(NUM_DEVICES, 2, *x.shape[1:])
  got, got_stats = jax.pmap(apply(synced), axis_name="batch", devices=devices)(
      replicated, shards)
  np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-4)
  for g, w in zip(jax.tree.leaves(got_stats), jax.tree.leaves(want_stats)):
    np.testing.assert_allclose(g[0], w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g[3], w, rtol=1e-4, atol=1e-5)

  # Sanity: without the axis name each device normalises its own 2 images: different.
  unsynced, _ = jax.pmap(apply(local), axis_name="batch", devices=devices)(
      replicated, shards)
  assert not np.allclose(unsynced.reshape(want.shape), want, rtol=1e-4, atol=1e-4)


def test_bn_axis_name_pmap_matches_single_device():
  if jax.local_device_count() >= NUM_DEVICES:
    check_pmap_matches_single_device()
    return
  root = REPO
  path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=path)  # XLA_FLAGS set above
  result = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr


if __name__ == "__main__":
  check_pmap_matches_single_device()
