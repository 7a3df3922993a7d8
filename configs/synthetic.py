r"""YOLOv2 with learnable anchors on the built-in synthetic dataset (the main job).

Runs anywhere on CPU; nothing is downloaded.

  python -m anchor_jax.main --config=configs/synthetic.py --workdir=runs/demo

Variants (``--config=configs/synthetic.py:VARIANT``):
  demo     (default) the from-scratch CPU recipe (``anchor_jax.defaults.from_scratch``,
           experiments/RECIPE.md) on the space-to-depth tiny YOLOv2 (width 0.25) at 160 px,
           DEMO_STEPS steps (~6.5 min on 2 CPU cores); prints the initial and learned
           anchors and AP50, writes anchors.png.
  tiny     a few steps of a minimal model, for tests and smoke runs (~10 s).
  full     DarkNet-19 YOLOv2 at 416 px with the paper's VOC recipe: the real model, for a GPU.
  study    one run of the CPU study (experiments/sweeps/*.py:cpu*): the demo's recipe and
           model, STUDY_STEPS steps, one eval at the end (see STUDY_STEPS).

The recipe's shares of the run (lr drops at 75 % and 95 %, T and lambda warm-ups over the
first quarter, checkpoints and evals at halves) follow ``train.steps`` when it is overridden.
Everything an experiment varies is here; override any key on the command line,
e.g. ``--config.dataset.preset=wide --config.anchors.init=uniform``.
"""

from anchor_jax import defaults

# The demo's length: 61.1 % AP50 on `mixed` at 5000 steps (51.1 % at 2500), a training loop
# of 6.6 min on 2 otherwise idle CPU cores; 3600 steps gave 59.1 % in 4.6 min
# (experiments/RECIPE.md, "Fresh-clone measurement").
DEMO_STEPS = 5000
# Length of the `study` variant: 1.4-2.5 min a run on 2 cores, two runs at a time (up to 42 %
# AP50 on mixed, 27 % on tiny and wide); Table 1 on the three presets with 3 seeds (72 runs)
# took 84 min, the whole study (~230 runs) would take ~4.8 h (experiments/RECIPE.md, "Targets").
STUDY_STEPS = 1200


def get_config(arg: str = "demo"):
  config = defaults.base_config()
  config.dataset.name = "synthetic"
  config.dataset.preset = "mixed"         # tiny | wide | mixed
  config.dataset.max_boxes = 24           # >= the presets' most objects per image (20)
  config.dataset.eval_examples = 256
  config.anchors.init = "identical"
  config.model.width = 0.25
  config.input.image_size = 160
  config.train.batch_size = 16
  config.train.log_every = 100
  config.eval.metric = "voc07"
  defaults.from_scratch(config, steps=DEMO_STEPS)

  if arg == "demo":
    pass
  elif arg == "tiny":
    config.model.name = "tiny"
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
    config.train.steps = STUDY_STEPS
    config.train.log_every = STUDY_STEPS // 8
    config.eval.every_steps = 0            # evaluate once, at the end
    config.eval.plot = False
  elif arg == "full":
    config.model.name = "darknet19"
    config.model.width = 1.0
    config.model.max_pool = "window"
    config.input.image_size = 416
    config.train.batch_size = 64
    config.train.steps = 30000
    config.train.lr_shape = "piecewise"
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
