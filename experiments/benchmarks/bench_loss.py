"""Time of target assignment + YOLOv2 loss (forward, and forward + backward).

B = 8 images, a 13 x 13 x 5 grid, 20 classes, M GT slots (all valid), median of
repeated jitted calls. Run:  python experiments/benchmarks/bench_loss.py
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from anchor_jax import losses

VOC_ANCHORS = [[1.3221, 1.73145], [3.19275, 4.00944], [5.05587, 8.09892],
               [9.47112, 4.84053], [11.2364, 10.0071]]


def _median_ms(fn, args, repeats):
  jax.block_until_ready(fn(*args))          # compile + warm
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--grid", type=int, default=13)
  parser.add_argument("--classes", type=int, default=20)
  parser.add_argument("--boxes", type=int, nargs="+", default=[10, 50, 100, 300])
  parser.add_argument("--repeats", type=int, default=30)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  log_anchors = jnp.log(jnp.asarray(VOC_ANCHORS))
  out = jnp.asarray(rng.normal(size=(args.batch, args.grid, args.grid, 5, 5 + args.classes)),
                    jnp.float32)

  def loss(o, la, boxes, labels, mask, temperature):
    return losses.yolo_loss(o, la, boxes, labels, mask, temperature=temperature,
                            cluster_weight=0.5, prior_scale=0.01)[0]
  fwd = jax.jit(loss)
  fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  print(f"device: {jax.devices()[0].device_kind}, B={args.batch}, grid={args.grid}x{args.grid}x5, "
        f"C={args.classes}, median of {args.repeats}")
  print(f"{'M':>5} {'T':>4} {'fwd ms':>8} {'fwd+bwd ms':>11}")
  for m in args.boxes:
    centre = rng.uniform(0.05, 0.95, (args.batch, m, 2))
    wh = rng.uniform(0.02, 0.6, (args.batch, m, 2))
    boxes = jnp.asarray(np.concatenate([centre - wh / 2, centre + wh / 2], -1), jnp.float32)
    labels = jnp.asarray(rng.integers(0, args.classes, (args.batch, m)), jnp.int32)
    mask = jnp.ones((args.batch, m), bool)
    for temperature in (0.0, 1.0):
      a = (out, log_anchors, boxes, labels, mask, jnp.float32(temperature))
      print(f"{m:>5} {temperature:>4.1f} {_median_ms(fwd, a, args.repeats):>8.2f} "
            f"{_median_ms(fwd_bwd, a, args.repeats):>11.2f}")


if __name__ == "__main__":
  main()
