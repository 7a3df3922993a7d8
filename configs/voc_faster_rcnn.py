r"""Faster R-CNN (ResNet-50, with or without FPN) on Pascal VOC with learnable RPN anchors
(paper Table 7).

  python -m anchor_jax.main --config=configs/voc_faster_rcnn.py:0712_fpn --workdir=runs/frcnn_opt \
      --config.dataset.path=/data/tfds --config.model.init_from=resnet50_imagenet.npz
  python -m anchor_jax.main --config=configs/voc_faster_rcnn.py:0712_fpn --workdir=runs/frcnn_base \
      --config.dataset.path=/data/tfds --config.model.init_from=resnet50_imagenet.npz \
      --config.anchors.optimize=False --config.anchors.cluster_weight=0   # the Baseline

Variants and the paper's mAP@.5 on VOC2007 test (Baseline -> Opt):
  07         ResNet-50 (C4 features, no FPN), VOC 2007 trainval   73.03 -> 73.59 (+0.56)
  0712       ResNet-50 (C4), VOC 07+12 trainval                   78.52 -> 79.02 (+0.50)
  0712_fpn   ResNet-50 FPN, VOC 07+12 trainval                    80.94 -> 81.46 (+0.52)
  runlocal   the 0712_fpn data and method on a from-scratch ResNet-18 (width 0.5, 320 px,
             2000 steps, first 500 test images): a laptop check that it runs, not the paper.

The paper gives no Faster R-CNN recipe beyond "ResNet50", "without BN or soft assignment
trick" (Opt = learnable anchors + the online-clustering warm-up) and 4 GPUs; these are
Detectron2's PascalVOC recipe (batch 16, lr 0.02 with a linear 1000-step warm-up (our burn-in
with power 1), x0.1 at 12k and 16k of 18k steps, weight decay 1e-4, frozen BN, stem and res2
frozen), with two differences of this codebase: images are resized to one square size
(``input.image_size`` 800, no aspect-preserving multi-scale 480-800), and without FPN the box
head is the FPN's 2-fc head on RoIAlign 7x7 of C4 (Detectron2's C4 model runs res5 on 14x14
RoIs). Learnable anchors are ``params['rpn']['anchor_log_wh']`` [L, A, 2] (log pixels), with
the network's lr (``anchors.lr_mult`` 1) and the clustering warm-up over the first 1500 steps
(the paper's YOLOv2 length; it gives none for Faster R-CNN).
Weights: ``model.init_from`` = an ImageNet ResNet-50 ``.npz``
(``experiments/tools/convert_resnet_torchvision.py`` writes one from torchvision's file on a
machine that has it; README "Faster R-CNN").
"""
from anchor_jax import defaults

STEPS, LR_DROPS = 18000, (12000, 16000)     # Detectron2's PascalVOC-Detection schedule


def get_config(arg: str = "0712_fpn"):
  """``07`` | ``0712`` | ``0712_fpn`` (default) | ``runlocal``."""
  if arg not in ("07", "0712", "0712_fpn", "runlocal"):
    raise ValueError(f"Unknown variant {arg!r} of configs/voc_faster_rcnn.py: "
                     "07 | 0712 | 0712_fpn | runlocal.")
  config = defaults.faster_rcnn(defaults.base_config(), fpn=arg in ("0712_fpn", "runlocal"),
                                steps=STEPS, lr_drops=LR_DROPS)
  config.dataset.name = "voc07" if arg == "07" else "voc"
  config.dataset.max_boxes = 50
  config.eval.metric = "voc07"
  config.eval.every_steps = 6000
  if arg == "runlocal":
    defaults.runlocal_rcnn(config)
  return config
