"""The GPU check (<= 5 minutes on one GPU): one JSON line per measurement.

  bash experiments/benchmarks/gpu_check.sh            # on a GPU machine
  bash experiments/benchmarks/gpu_check.sh --smoke    # anywhere: tiny sizes, checks it runs

Lines (``"check"`` names each):
  train      DarkNet-19 YOLOv2 (20 classes) at 416 px, float32 and bfloat16: the largest
             batch of --batches that fits, median step time, images/s, model FLOPs per
             image (3 x the forward's conv FLOPs) and MFU against --peak_tflops_* (defaults
             by device kind: H100/H200 dense bf16 989, TF32 494 TFLOP/s);
  opt_ratio  Opt / Baseline step time (alternated steps, same batch; the paper: 1.016);
  input      the training stream from a generated VOC folder of JPEGs at 416 px with
             dataset.workers = all cores, images/s, against the step's consumption;
  eval       the eval runner (forward, decode, NMS, VOC07 AP) over a synthetic eval split,
             images/s.
--smoke shrinks every size (tiny model, 64 px, batches of 4, a few steps) for a CPU.
"""
import json
import os
import statistics
import sys
import tempfile
import time

import jax
import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import config_lib  # noqa: E402
from anchor_jax.data import pipeline  # noqa: E402
from anchor_jax.evaluation import runner  # noqa: E402
from anchor_jax.model import yolov2  # noqa: E402
from anchor_jax.training import train  # noqa: E402
from experiments.benchmarks import _steps, bench_stream  # noqa: E402
from experiments.sweeps import _common as methods  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("smoke", False, "Tiny sizes: check that the script runs (CPU is fine).")
flags.DEFINE_list("batches", ["256", "192", "128", "96", "64", "32"],
                  "Global batch sizes to try, largest first (the first that fits is timed).")
flags.DEFINE_integer("timed_steps", 10, "Timed steps per measurement (median).")
flags.DEFINE_float("peak_tflops_bf16", 0.0, "Device peak for MFU (0: by device kind).")
flags.DEFINE_float("peak_tflops_f32", 0.0, "Device peak for float32 MFU (0: by device kind).")
flags.DEFINE_integer("input_images", 256, "JPEGs in the generated VOC folder.")
flags.DEFINE_integer("eval_images", 512, "Synthetic eval images.")

# Dense peaks (TFLOP/s) by device kind: bfloat16, and float32 matmuls as XLA runs them on
# these GPUs by default (TF32).
PEAKS = {"H100": (989.0, 494.0), "H200": (989.0, 494.0)}


def _emit(record: dict) -> None:
  print(json.dumps(record), flush=True)


SMOKE = ("--config.model.name=tiny", "--config.model.width=0.125",
         "--config.input.image_size=64", "--config.dataset.eval_examples=8")


def _config(smoke: bool, overrides=()):
  """DarkNet-19 at 416 px on the synthetic data (5 classes), or the tiny smoke model."""
  return config_lib.load(os.path.join(REPO, "configs/synthetic.py:full"),
                         [*(SMOKE if smoke else ()), *overrides])


def _peaks():
  kind = jax.devices()[0].device_kind
  found = next((v for k, v in PEAKS.items() if k in kind), (None, None))
  bf16 = FLAGS.peak_tflops_bf16 or found[0]
  f32 = FLAGS.peak_tflops_f32 or found[1]
  return kind, {"bfloat16": bf16, "float32": f32}


def _time(step, state, batch, n: int):
  """Median seconds per step over ``n`` steps (after one warm-up)."""
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(n):
    t0 = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return statistics.median(times), state


def _is_oom(error: Exception) -> bool:
  return "RESOURCE_EXHAUSTED" in str(error) or "out of memory" in str(error).lower()


def check_train(smoke: bool, batches, steps: int) -> float:
  """The 'train' lines; returns the float32 images/s (what the input must keep up with)."""
  kind, peaks = _peaks()
  rate32 = 0.0
  for dtype in ("float32", "bfloat16"):
    for batch_size in batches:
      config = _config(smoke, [f"--config.model.dtype={dtype}"])
      try:
        step, state, batch, model = _steps.pmapped_train_step(config, batch_size)
        seconds, _ = _time(step, state, batch, steps)
      except Exception as e:  # noqa: BLE001 -- XLA's OOM is a plain runtime error
        if _is_oom(e):
          continue
        raise
      flops = 3 * yolov2.forward_flops(model, config.input.image_size)   # per image
      rate = batch_size / seconds
      peak = peaks[dtype]
      _emit({"check": "train", "device": kind, "model": config.model.name,
             "image_size": config.input.image_size, "dtype": dtype, "batch": batch_size,
             "step_s": round(seconds, 5), "images_per_s": round(rate, 1),
             "gflop_per_image": round(flops / 1e9, 2),
             "mfu": None if not peak else round(rate * flops / (peak * 1e12), 4)})
      if dtype == "float32":
        rate32 = rate
      break
    else:
      _emit({"check": "train", "dtype": dtype, "error": f"no batch of {batches} fits"})
  return rate32


def check_opt_ratio(smoke: bool, batch_size: int, steps: int) -> None:
  """Opt / Baseline step time, alternated so that both see the same load."""
  fns = {name: _steps.pmapped_train_step(_config(smoke, overrides), batch_size)[:3]
         for name, overrides in (("opt", methods.opt()), ("baseline", methods.BASELINE))}
  states = {name: fn[1] for name, fn in fns.items()}
  for name, (step, _, batch) in fns.items():   # compile both first
    states[name], m = step(states[name], batch)
    jax.block_until_ready(m)
  times = {name: [] for name in fns}
  for _ in range(steps):
    for name, (step, _, batch) in fns.items():
      t0 = time.perf_counter()
      states[name], m = step(states[name], batch)
      jax.block_until_ready(m)
      times[name].append(time.perf_counter() - t0)
  opt, base = (statistics.median(times[k]) for k in ("opt", "baseline"))
  _emit({"check": "opt_ratio", "batch": batch_size, "opt_step_s": round(opt, 5),
         "baseline_step_s": round(base, 5), "ratio": round(opt / base, 4), "paper": 1.016})


def check_input(smoke: bool, consumption: float) -> None:
  """The training stream with every core, against the step's images/s."""
  images, size = (16, 64) if smoke else (FLAGS.input_images, 416)
  workers = os.cpu_count() or 1
  with tempfile.TemporaryDirectory() as root:
    bench_stream.write_folder(root, images, np.random.default_rng(0))
    rate = bench_stream.stream_rate(root, workers=workers, size=size, batch=16,
                                    steps=2 if smoke else 8, repeats=2 if smoke else 3)
  _emit({"check": "input", "image_size": size, "workers": workers,
         "images_per_s": round(rate, 1), "step_images_per_s": round(consumption, 1),
         "covers_step": rate >= consumption})


def check_eval(smoke: bool) -> None:
  """Forward, decode, NMS and VOC07 AP over a synthetic eval split, images/s."""
  config = _config(smoke)
  config.dataset.eval_examples = 8 if smoke else FLAGS.eval_images
  ds = pipeline.build_dataset(config, "eval")
  model = yolov2.from_config(config, num_classes=len(ds.class_names),
                             anchors=np.ones((config.anchors.num, 2)))
  params = train.init_params(model, image_size=config.input.image_size, seed=0)
  evaluator = runner.Evaluator(config, ds, model=model)
  evaluator.run(*params)   # compile
  t0 = time.perf_counter()
  result = evaluator.run(*params)
  seconds = time.perf_counter() - t0
  _emit({"check": "eval", "images": result["num_images"], "image_size": config.input.image_size,
         "images_per_s": round(result["num_images"] / seconds, 1)})


def main(argv):
  del argv
  smoke = FLAGS.smoke
  batches = [4, 2] if smoke else [int(b) for b in FLAGS.batches]
  steps = 2 if smoke else FLAGS.timed_steps
  rate = check_train(smoke, batches, steps)
  check_opt_ratio(smoke, batches[-1] if smoke else 64, steps)
  check_input(smoke, rate)
  check_eval(smoke)


if __name__ == "__main__":
  app.run(main)
