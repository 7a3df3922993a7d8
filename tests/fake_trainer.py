r"""A stand-in for ``python -m anchor_jax.main`` in the runner's tests: no JAX, instant.

  python tests/fake_trainer.py --config=ANY --workdir=DIR [--config.KEY=VALUE ...]

Writes what the runner reads, deterministically from the overrides: ``config.json``
(``train.steps``), ``ckpt.json`` (its "checkpoint": the last step done),
``anchors.jsonl``, ``eval.jsonl`` at the last step. Every key is accepted. Knobs:

  train.steps=N     steps (default 4)
  fake.ap50=a,b,c   AP50 of seed 0, 1, 2 ... (fractions; default 0.5 for every seed)
  fake.ap=a,b,c     also report COCO ``AP`` per seed
  fake.fail=CODE    print 40 numbered lines and exit with CODE before training
  fake.fail_seeds=1,2  ... only for these seeds (default: every seed)
  fake.kill_at=K    on the first launch only, SIGKILL itself once step K is saved
  fake.sleep=S      seconds per step (to interrupt it)

It resumes from ``ckpt.json``; each launch appends ``start=<step>`` to ``launches.txt`` and
the CPUs it may run on to ``cpus.txt``.
SIGTERM saves and exits 0 without the final eval, like the real trainer.
"""
import json
import os
import signal
import sys
import time

DEFAULT_STEPS = 4
DEFAULT_AP50 = 0.5
FAIL_LINES = 40


def parse(argv):
  flags, overrides = {}, {}
  for arg in argv:
    key, _, value = arg.partition("=")
    if key.startswith("--config."):
      overrides[key[len("--config."):]] = value
    else:
      flags[key.lstrip("-")] = value
  return flags, overrides


def per_seed(text: str, seed: int) -> float:
  values = [float(v) for v in text.split(",")]
  return values[seed % len(values)]


def append(path, record):
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")


def main(argv):
  flags, o = parse(argv)
  workdir = flags["workdir"]
  os.makedirs(workdir, exist_ok=True)
  seed, steps = int(o.get("seed", 0)), int(o.get("train.steps", DEFAULT_STEPS))
  fail_seeds = o.get("fake.fail_seeds")
  if "fake.fail" in o and (fail_seeds is None or str(seed) in fail_seeds.split(",")):
    for i in range(FAIL_LINES):
      print(f"fake log line {i}")
    print("error: asked to fail", file=sys.stderr)
    return int(o["fake.fail"])
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"seed": seed, "train": {"steps": steps}, "overrides": sorted(o.items())}, f)
  ckpt = os.path.join(workdir, "ckpt.json")
  start = 0
  if os.path.exists(ckpt):
    with open(ckpt) as f:
      start = json.load(f)["step"]
  first_launch = not os.path.exists(os.path.join(workdir, "launches.txt"))
  with open(os.path.join(workdir, "launches.txt"), "a") as f:
    f.write(f"start={start}\n")
  with open(os.path.join(workdir, "cpus.txt"), "a") as f:
    f.write(",".join(map(str, sorted(os.sched_getaffinity(0)))) + "\n")
  print(f"fake trainer: seed {seed}, steps {start}..{steps}", flush=True)
  stop = []
  signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
  anchors = os.path.join(workdir, "anchors.jsonl")
  step = start
  while step < steps and not stop:
    time.sleep(float(o.get("fake.sleep", 0)))
    step += 1
    with open(ckpt, "w") as f:
      json.dump({"step": step}, f)
    append(anchors, {"step": step, "anchors": [[1 + seed, 2], [3, 4]],
                     "anchors_px": [[32 * (1 + seed), 64], [96, 128 + step]]})
    if first_launch and step == int(o.get("fake.kill_at", -1)):
      os.kill(os.getpid(), signal.SIGKILL)
  if stop:
    print(f"SIGTERM: saved step {step}", flush=True)
    return 0
  result = {"step": steps, "split": "test",
            "AP50": per_seed(o.get("fake.ap50", str(DEFAULT_AP50)), seed), "per_class": {}}
  if "fake.ap" in o:
    result["AP"] = per_seed(o["fake.ap"], seed)
  append(os.path.join(workdir, "eval.jsonl"), result)
  print(f"AP50 at step {steps}: {100 * result['AP50']:.2f}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
