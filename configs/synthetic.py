r"""YOLOv2 with learnable anchors on the built-in synthetic dataset (the main job).

Runs anywhere on CPU; nothing is downloaded.

  python -m anchor_jax.main --config=configs/synthetic.py --workdir=runs/demo

Variants (``--config=configs/synthetic.py:VARIANT``):
  demo     (default) tiny YOLOv2 (width 0.25), 128 px, ~5 min on 2 CPU cores; prints the
           initial and learned anchors and AP50, writes anchors.png.
  tiny     a few steps of a minimal model, for tests and smoke runs (~10 s).
  full     DarkNet-19 YOLOv2 at 416 px: the real model, for a GPU.
  study    the CPU-scale run of the experiment sweeps (experiments/sweeps/*.py:cpu):
           tiny YOLOv2 (width 0.25) at 96 px, STUDY_STEPS steps, warm-ups over the first
           quarter, one eval at the end; ~2 min per run on 2 CPU cores (see STUDY_STEPS).

Everything an experiment varies is here; override any key on the command line,
e.g. ``--config.dataset.preset=wide --config.anchors.init=uniform``.
"""

from anchor_jax import defaults

# Length of the `study` variant. 1000 steps is the shortest length at which AP50 clearly
# separates the methods on this CPU (at 200 steps it was 0.3-2 %, all noise, and BN
# running averages with momentum 0.99 still held 13 % of their initial values). One run
# through experiments.run takes ~125 s on 2 CPU cores (~10 steps/s + start-up, compile
# and the final eval), so Table 1 with 3 seeds (18 runs) takes ~35 min.
# Its schedule scales with it.
STUDY_STEPS = 1000


def get_config(arg: str = "demo"):
  config = defaults.base_config()
  config.dataset.name = "synthetic"
  config.dataset.preset = "mixed"         # tiny | wide | mixed
  config.dataset.max_boxes = 16
  config.dataset.eval_examples = 256

  config.anchors.init = "identical"
  config.anchors.soft_assign_steps = 300
  config.anchors.cluster_steps = 300
  config.anchors.lr_mult = 10.0           # anchors move in few steps on a short CPU run

  config.model.name = "tiny"
  config.model.width = 0.25
  config.input.image_size = 128

  config.train.steps = 1200
  config.train.batch_size = 16
  config.train.lr_schedule = ((0, 1e-3), (900, 1e-4), (1150, 1e-5))
  config.train.burn_in_steps = 100
  config.train.momentum = 0.9
  config.train.log_every = 50
  config.train.checkpoint_every = 400
  config.eval.every_steps = 400
  config.eval.metric = "voc07"

  if arg == "demo":
    pass
  elif arg == "tiny":
    config.model.width = 0.125
    config.input.image_size = 64
    config.dataset.max_boxes = 8
    config.dataset.eval_examples = 16
    config.train.steps = 4
    config.train.batch_size = 8
    config.train.burn_in_steps = 0
    config.train.log_every = 1
    config.train.checkpoint_every = 2
    config.anchors.soft_assign_steps = 2
    config.anchors.cluster_steps = 2
    config.eval.every_steps = 4
    config.eval.batch_size = 8
    config.eval.plot = False
  elif arg == "study":
    # The demo's model, batch and anchor lr at 96 px; the schedule in fractions of the run
    # (at 1000 steps: burn-in 125, warm-ups 250, lr x0.1 at 750).
    config.input.image_size = 96
    config.train.steps = STUDY_STEPS
    config.train.lr_schedule = ((0, 1e-3), (STUDY_STEPS * 3 // 4, 1e-4))
    config.train.burn_in_steps = STUDY_STEPS // 8
    config.anchors.soft_assign_steps = STUDY_STEPS // 4
    config.anchors.cluster_steps = STUDY_STEPS // 4
    config.train.checkpoint_every = STUDY_STEPS // 2
    config.train.log_every = max(1, STUDY_STEPS // 8)
    config.eval.every_steps = 0            # evaluate once, at the end
    config.eval.plot = False
  elif arg == "full":
    config.model.name = "darknet19"
    config.model.width = 1.0
    config.input.image_size = 416
    config.train.batch_size = 64
    config.train.steps = 30000
    config.train.lr_schedule = defaults.PAPER_VOC_LR   # the paper's VOC recipe, no burn-in
    config.train.burn_in_steps = 0
    config.anchors.lr_mult = 1.0
    config.anchors.soft_assign_steps = 1500
    config.anchors.cluster_steps = 1500
    config.train.log_every = 100
    config.train.checkpoint_every = 1000
    config.eval.every_steps = 5000
  else:
    raise ValueError(f"Unknown variant {arg!r} of configs/synthetic.py: "
                     "demo | tiny | full | study.")
  return config
