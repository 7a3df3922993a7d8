r"""Faster R-CNN with learnable RPN anchors on the built-in synthetic data (CPU).

  python -m anchor_jax.main --config=configs/rcnn_synthetic.py --workdir=runs/rcnn_opt
  python -m anchor_jax.main --config=configs/rcnn_synthetic.py --workdir=runs/rcnn_base \
      --config.anchors.optimize=False --config.anchors.cluster_weight=0     # the Baseline

Variants (``--config=configs/rcnn_synthetic.py:VARIANT``):
  cpu   (default) the CPU-scale check of paper Table 7 (``defaults.from_scratch_rcnn``): a
        ResNet-18 FPN (width 0.25, train-mode BN, random init) at 160 px on the ``mixed``
        preset, CPU_STEPS steps of 16 images; RPN recall at 50 / 100 / 300 proposals and AP50.
        ``experiments/sweeps/table7.py:cpu`` runs Baseline and Opt over seeds (~15 min a run,
        two at a time on 2 cores; experiments/RESULTS.md: AP50 69.6 -> 78.9, RPN recall at
        50 proposals 76.5 -> 89.6 %, 3 seeds; on ``wide``, ``table7.py:cpu_wide``: AP50
        72.3 -> 81.5).
  tiny  a few steps of a minimal detector, for tests and smoke runs.
The anchors are Detectron2's five sizes x three aspect ratios, scaled to the input size
(32-512 px at 800 -> 6.4-102.4 px at 160), one size per FPN level P2-P6.
"""
from anchor_jax import defaults

CPU_STEPS = 1000


def get_config(arg: str = "cpu"):
  """``cpu`` (default) | ``tiny``."""
  if arg not in ("cpu", "tiny"):
    raise ValueError(f"Unknown variant {arg!r} of configs/rcnn_synthetic.py: cpu | tiny.")
  config = defaults.base_config()
  config.dataset.name = "synthetic"
  config.dataset.preset = "mixed"
  config.dataset.max_boxes = 24
  config.dataset.eval_examples = 256
  config.train.batch_size = 16
  config.train.log_every = 100
  config.eval.metric = "voc07"
  config.eval.plot = False
  defaults.from_scratch_rcnn(config, steps=CPU_STEPS, image_size=160, width=0.25)
  config.eval.every_steps = 0                  # one eval, at the end
  if arg == "tiny":
    config.model.width = 0.125
    config.input.image_size = 64
    config.rcnn.anchor_sizes = tuple(round(s * 64 / 800, 2) for s in (32, 64, 128, 256, 512))
    config.rcnn.fc_dim = 64
    config.rcnn.rpn_batch_per_image, config.rcnn.roi_batch_per_image = 32, 32
    config.rcnn.rpn_pre_nms_train = config.rcnn.rpn_pre_nms_test = 100
    config.rcnn.rpn_post_nms_train = config.rcnn.rpn_post_nms_test = 50
    config.rcnn.test_pre_nms = 100
    config.dataset.max_boxes = 8
    config.dataset.eval_examples = 8
    config.train.steps = 4
    config.train.batch_size = 8
    config.train.burn_in_steps = 0
    config.train.log_every = 1
    config.train.checkpoint_every = 2
    config.anchors.cluster_steps = 2
    config.eval.every_steps = 4
    config.eval.batch_size = 8
  return config
