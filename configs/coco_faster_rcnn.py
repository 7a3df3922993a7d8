r"""Faster R-CNN ResNet-50 FPN on COCO 2017 with learnable RPN anchors (paper Table 7).

  python -m anchor_jax.main --config=configs/coco_faster_rcnn.py --workdir=runs/coco_frcnn_opt \
      --config.dataset.path=/data/tfds --config.model.init_from=resnet50_imagenet.npz
  ... --config.anchors.optimize=False --config.anchors.cluster_weight=0   # the Baseline

Paper (COCO 2017 val, AP .5:.95): Baseline 36.78 -> Opt 37.09 (+0.31); RPN recall 41.77 ->
42.60 % at 50 proposals and 47.77 -> 48.28 % at 100 (``RPN_recall@50`` / ``@100`` in
eval.jsonl); training time per iteration 0.8154 s (Opt) vs 0.8027 s (Baseline) on 4 GPUs.
Recipe: Detectron2's R50-FPN 1x (batch 16, lr 0.02, linear warm-up 1000 steps, x0.1 at 60k
and 80k of 90k, weight decay 1e-4, frozen BN, stem and res2 frozen), images resized to one
square size (800 px) instead of the shorter side to 800; the method as in
configs/voc_faster_rcnn.py. Variant ``runlocal``: a laptop check (ResNet-18 from scratch,
320 px, 2000 steps, the first 500 validation images).
"""
from anchor_jax import defaults

STEPS, LR_DROPS = 90000, (60000, 80000)     # Detectron2's R50-FPN 1x schedule


def get_config(arg: str = "fpn"):
  """``fpn`` (default) | ``runlocal``."""
  if arg not in ("fpn", "runlocal"):
    raise ValueError(f"Unknown variant {arg!r} of configs/coco_faster_rcnn.py: fpn | runlocal.")
  config = defaults.faster_rcnn(defaults.base_config(), fpn=True, steps=STEPS,
                                lr_drops=LR_DROPS)
  config.dataset.name = "coco"
  config.train.checkpoint_every = 5000
  config.eval.metric = "coco"
  config.eval.every_steps = 30000
  if arg == "runlocal":
    defaults.runlocal_rcnn(config)
  return config
