r"""YOLOv2 on COCO 2017 train, evaluated on val2017 (paper §4.2.2, Tables 2-4).

  python -m anchor_jax.main --config=configs/coco_yolov2.py --workdir=runs/coco_opt \
      --config.dataset.path=/data/tfds

Paper (544 px train and test, 100k steps, batch 64 on 4 GPUs): Opt (k-means)
24.47 AP / 45.07 AP50 on val vs Baseline (k-means) 23.45 / 43.87; Opt
(identical) 24.43, Opt (uniform) 24.55. "k-means" = darknet's COCO anchors
(``init=coco``). Learned anchors (Table 4) ~ (5.7,6.7) (17,20) (44,45)
(104,99) (241,230) px.

Pretrained start as the paper's: darknet's ImageNet DarkNet-19
(https://pjreddie.com/media/files/darknet19_448.conv.23; README "Pretrained weights"), the
backbone only (``model.init_parts=backbone`` here):

  python -m anchor_jax.main --config=configs/coco_yolov2.py --workdir=runs/coco_opt \
      --config.dataset.path=/data/tfds --config.model.init_from=darknet19_448.conv.23

darknet's trained COCO detector (``yolov2.weights`` with ``yolov2.cfg`` beside it,
https://pjreddie.com/darknet/yolov2/), scored without training (darknet's cfg runs it at
608 px; it was trained on COCO 2014 trainval, which overlaps val2017, so its val2017 AP is
not a held-out number):

  python -m anchor_jax.evaluate --config=configs/coco_yolov2.py \
      --config.dataset.path=/data/tfds --config.model.init_from=yolov2.weights \
      --config.model.init_parts=all --config.model.reorg=darknet \
      --config.input.eval_image_size=608

Variant ``:runlocal`` checks on a laptop that everything runs on COCO (it reproduces
nothing): ``anchor_jax.defaults.runlocal`` keeps the data, anchors and method and takes the
from-scratch CPU recipe, tiny YOLOv2, 320 px, 2000 steps and the first 500 val images:

  python -m anchor_jax.main --config=configs/coco_yolov2.py:runlocal \
      --workdir=runs/coco_local --config.dataset.path=/data/tfds

Each choice and the paper's sentence behind it (§4.2.2):
* "We use similar training configurations as the VOC experiments. Mini-batch size is 64
  [...]. Momentum of SGD is set to 0.9";
* steps and schedule, no burn-in: "we increase the number of iterations to 100,000, and
  set the learning rate schedule to (0∼1000,1e-4), (1000∼80000,1e-3),
  (80000∼90000,1e-4), (90000∼100000, 1e-5)";
* one input size, no multi-scale: "The train and test image sizes are both set to 544 in
  all experiments";
* augmentation as for VOC (yolo-voc.cfg's values, anchor_jax.defaults).
"""
from anchor_jax import defaults

# Paper §4.2.2: (0-1k: 1e-4), (1k-80k: 1e-3), (80k-90k: 1e-4), (90k-100k: 1e-5).
PAPER_COCO_LR = ((0, 1e-4), (1000, 1e-3), (80000, 1e-4), (90000, 1e-5))


def get_config(arg: str = "paper"):
  """``paper``: the paper's recipe; ``runlocal``: a laptop check (see the docstring)."""
  if arg not in ("paper", "runlocal"):
    raise ValueError(f"Unknown variant {arg!r} of configs/coco_yolov2.py: paper | runlocal.")
  config = defaults.base_config()
  config.dataset.name = "coco"           # TFDS coco/2017
  config.dataset.num_classes = 80
  config.dataset.max_boxes = 100
  config.model.name = "darknet19"
  config.model.init_parts = "backbone"   # --config.model.init_from=darknet19_448.conv.23
  config.input.image_size = 544
  config.input.eval_image_size = 544
  config.input.multiscale_sizes = ()
  config.anchors.init = "coco"
  config.train.steps = 100000
  config.train.batch_size = 64
  config.train.lr_schedule = PAPER_COCO_LR
  config.train.burn_in_steps = 0
  config.eval.metric = "coco"
  config.eval.max_dets = 100
  config.eval.every_steps = 10000
  if arg == "runlocal":
    defaults.runlocal(config)
  return config
