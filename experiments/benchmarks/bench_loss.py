"""Time of target assignment + YOLOv2 loss (forward, and forward + backward).

B = 8 images, a 13 x 13 x 5 grid, 20 classes, M GT slots (all valid), median of
repeated jitted calls. Run:

  python experiments/benchmarks/bench_loss.py
  python experiments/benchmarks/bench_loss.py --boxes=10,100 --repeats=5
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from anchor_jax.core import losses

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch", 8, "Images B.")
flags.DEFINE_integer("grid", 13, "Output grid side.")
flags.DEFINE_integer("classes", 20, "Number of classes C.")
flags.DEFINE_list("boxes", ["10", "50", "100", "300"], "GT slots M to time, comma-separated.")
flags.DEFINE_integer("repeats", 30, "Timed calls per figure (median).")

VOC_ANCHORS = [[1.3221, 1.73145], [3.19275, 4.00944], [5.05587, 8.09892],
               [9.47112, 4.84053], [11.2364, 10.0071]]


def _median_ms(fn, args, repeats):
  """Median milliseconds of ``fn(*args)`` over ``repeats`` calls, after compiling it."""
  jax.block_until_ready(fn(*args))          # compile + warm
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def main(argv):
  """Prints the forward and forward+backward time of the loss per M and temperature."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  boxes_list = [int(m) for m in FLAGS.boxes]
  batch, grid, classes, repeats = FLAGS.batch, FLAGS.grid, FLAGS.classes, FLAGS.repeats
  rng = np.random.default_rng(0)
  log_anchors = jnp.log(jnp.asarray(VOC_ANCHORS))
  out = jnp.asarray(rng.normal(size=(batch, grid, grid, 5, 5 + classes)), jnp.float32)

  def loss(o, la, boxes, labels, mask, temperature):
    """Total YOLOv2 loss (the value the step differentiates)."""
    return losses.yolo_loss(o, la, boxes, labels, mask, temperature=temperature,
                            cluster_weight=0.5, prior_scale=0.01)[0]
  fwd = jax.jit(loss)
  fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  print(f"device: {jax.devices()[0].device_kind}, B={batch}, grid={grid}x{grid}x5, "
        f"C={classes}, median of {repeats}")
  print(f"{'M':>5} {'T':>4} {'fwd ms':>8} {'fwd+bwd ms':>11}")
  for m in boxes_list:
    centre = rng.uniform(0.05, 0.95, (batch, m, 2))
    wh = rng.uniform(0.02, 0.6, (batch, m, 2))
    boxes = jnp.asarray(np.concatenate([centre - wh / 2, centre + wh / 2], -1), jnp.float32)
    labels = jnp.asarray(rng.integers(0, classes, (batch, m)), jnp.int32)
    mask = jnp.ones((batch, m), bool)
    for temperature in (0.0, 1.0):
      a = (out, log_anchors, boxes, labels, mask, jnp.float32(temperature))
      print(f"{m:>5} {temperature:>4.1f} {_median_ms(fwd, a, repeats):>8.2f} "
            f"{_median_ms(fwd_bwd, a, repeats):>11.2f}")


if __name__ == "__main__":
  app.run(main)
