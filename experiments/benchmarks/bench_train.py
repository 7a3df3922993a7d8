"""Training-step benchmarks: anchors optimised vs frozen, the loss's share of a
step, throughput and compile time, for the tiny model and full DarkNet-19.

  python experiments/benchmarks/bench_train.py                 # tiny model (CPU)
  python experiments/benchmarks/bench_train.py --full          # + DarkNet-19 at 416
  python experiments/benchmarks/bench_train.py --repeats=3     # a quick look

Opt and Baseline steps are timed alternately in one process (same config,
same batch), so machine noise hits both alike; the ratio of medians is the
cost of learning anchors (paper: ~1.016).
"""
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import config_lib  # noqa: E402
from anchor_jax.core import losses  # noqa: E402
from anchor_jax.data import pipeline  # noqa: E402
from anchor_jax.model import yolov2  # noqa: E402
from anchor_jax.training import parallel, train  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 20, "Alternated timed steps per figure (median).")
flags.DEFINE_bool("full", False, "Also DarkNet-19 at 416 (slow on CPU).")
flags.DEFINE_integer("full_batch", 2, "Images per device of the --full run.")


def build(config):
  """Opt and Baseline train steps (pmapped) from the same initial state."""
  ds = pipeline.build_dataset(config, "train")
  anchors = train.initial_anchors(config, ds)
  model = yolov2.from_config(config, num_classes=len(ds.class_names), anchors=anchors,
                             axis_name=parallel.AXIS)
  schedules = train.make_schedules(config)
  steps = {}
  for optimize in (True, False):
    config.anchors.optimize = optimize
    tx, state = train.create_state(config, model, schedules)
    fn = jax.pmap(train.make_train_step(config, model, tx, schedules), axis_name=parallel.AXIS,
                  donate_argnums=(0,))
    steps[optimize] = [fn, parallel.replicate(state)]
  config.anchors.optimize = True
  batch = parallel.shard(ds.batch(np.arange(config.train.batch_size)))
  return model, steps, batch


def time_steps(config, repeats):
  """Compile time of each step and median step time of ``repeats`` alternated steps."""
  model, steps, batch = build(config)
  compile_s = {}
  for optimize, slot in steps.items():
    t0 = time.perf_counter()
    slot[1], m = slot[0](slot[1], batch)
    jax.block_until_ready(m)
    compile_s[optimize] = time.perf_counter() - t0
  times = {True: [], False: []}
  for _ in range(repeats):
    for optimize in (True, False):        # alternate: same noise for both
      fn, state = steps[optimize]
      t0 = time.perf_counter()
      state, m = fn(state, batch)
      jax.block_until_ready(m)
      times[optimize].append(time.perf_counter() - t0)
      steps[optimize][1] = state
  return compile_s, {k: float(np.median(v)) for k, v in times.items()}, batch


def loss_time(config, batch, num_boxes, repeats):
  """Median fwd+bwd time of assignment + loss alone on the step's output shape."""
  per_dev = {k: v[0] for k, v in batch.items()}
  grid = config.input.image_size // 32
  b = per_dev["image"].shape[0]
  c = len(pipeline.build_dataset(config, "train").class_names)
  rng = np.random.default_rng(0)
  out = jnp.asarray(rng.normal(size=(b, grid, grid, config.anchors.num, 5 + c)), jnp.float32)
  centre = rng.uniform(0.05, 0.95, (b, num_boxes, 2))
  wh = rng.uniform(0.02, 0.6, (b, num_boxes, 2))
  boxes = jnp.asarray(np.concatenate([centre - wh / 2, centre + wh / 2], -1), jnp.float32)
  labels = jnp.asarray(rng.integers(0, c, (b, num_boxes)), jnp.int32)
  mask = jnp.ones((b, num_boxes), bool)
  la = jnp.log(jnp.full((config.anchors.num, 2), 3.0))
  fn = jax.jit(jax.grad(lambda o, a: losses.yolo_loss(o, a, boxes, labels, mask,
                                                      temperature=0.5, cluster_weight=0.5)[0],
                        argnums=(0, 1)))
  jax.block_until_ready(fn(out, la))
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(out, la))
    ts.append(time.perf_counter() - t0)
  return float(np.median(ts))


def report(name, config, repeats):
  """Prints compile time, step time, throughput and the loss's share for ``config``."""
  compile_s, med, batch = time_steps(config, repeats)
  gb = config.train.batch_size
  print(f"\n== {name}: {config.model.name} width {config.model.width}, "
        f"{config.input.image_size}px, batch {gb}, {jax.device_count()} "
        f"{jax.devices()[0].platform} device(s), median of {repeats} alternated steps")
  print(f"compile (first step) s: opt {compile_s[True]:.1f}  frozen {compile_s[False]:.1f}")
  print(f"step ms: opt {1e3 * med[True]:.1f}  frozen {1e3 * med[False]:.1f}  "
        f"ratio opt/frozen {med[True] / med[False]:.3f}")
  print(f"throughput (opt): {1 / med[True]:.2f} steps/s, {gb / med[True]:.1f} images/s")
  for m in (config.dataset.max_boxes, 100):
    lt = loss_time(config, batch, m, repeats)
    print(f"assignment + loss fwd+bwd at M={m}: {1e3 * lt:.2f} ms = "
          f"{100 * lt / med[True]:.1f}% of the step")


def main(argv):
  """Benchmarks the demo config, and with ``--full`` the full DarkNet-19 config."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  report("demo config (configs/synthetic.py)", config_lib.load(os.path.join(REPO, "configs/synthetic.py:demo")), FLAGS.repeats)
  if FLAGS.full:
    config = config_lib.load(os.path.join(REPO, "configs/synthetic.py:full"))
    config.train.batch_size = FLAGS.full_batch * jax.device_count()
    config.dataset.max_boxes = 50
    report("full YOLOv2 (configs/synthetic.py:full)", config, max(3, FLAGS.repeats // 5))


if __name__ == "__main__":
  app.run(main)
