"""The default experiment: every config key that code reads, with darknet/paper values.

The experiment configs in ``configs/`` start from ``base_config()`` and change what
differs. Keys are validated by ``anchor_jax.config_lib.validate`` before a run starts.
"""
from __future__ import annotations

import ml_collections

# Paper §4.2.1 (VOC): (0-100: 1e-4), (100-15k: 1e-3), (15k-27k: 1e-4), (27k-30k: 1e-5).
PAPER_VOC_LR = ((0, 1e-4), (100, 1e-3), (15000, 1e-4), (27000, 1e-5))


def from_scratch(config: ml_collections.ConfigDict, *, steps: int) -> ml_collections.ConfigDict:
  """The CPU recipe for a small YOLOv2 trained from random init (experiments/RECIPE.md).

  The paper's lr 1e-3 assumes an ImageNet-pretrained DarkNet-19; from scratch a tiny net
  at that lr stays near chance for a whole CPU run. Measured instead: SGD (momentum 0.9) at
  1e-2 with darknet's burn-in, cut x0.1 at 75 % and 95 % of the run (3e-2 diverges; AdamW,
  cosine decay, EMA, a focal-loss objectness prior and BN momentum 0.9 did not beat it),
  the space-to-depth stem (3.3x faster step than the strided first conv at 128 px), and
  the reshape max-pool. Everything that is a share of the run -- lr drops, T and lambda
  warm-ups (a quarter), checkpoints and evals (halves) -- follows ``train.steps``, also
  when it is overridden on the command line (FieldReferences).
  """
  config.model.name = "tiny_s2d"
  config.model.max_pool = "reshape"
  config.train.optimizer = "sgd"
  config.train.momentum = 0.9
  config.train.lr_shape = "step"
  config.train.lr_schedule = ()           # unread by "step": kept empty so that setting it fails
  config.train.peak_lr = 1e-2
  config.train.lr_decay_at = (0.75, 0.95)
  config.train.lr_decay_factor = 0.1
  config.train.burn_in_steps = 100
  config.anchors.lr_mult = 10.0           # anchors settle within the T / lambda warm-ups
  config.train.steps = steps
  run = config.train.get_ref("steps")
  config.anchors.soft_assign_steps = run // 4
  config.anchors.cluster_steps = run // 4
  config.train.checkpoint_every = run // 2
  config.eval.every_steps = run // 2
  return config


def runlocal(config: ml_collections.ConfigDict, *, steps: int = 2000, image_size: int = 320,
             eval_examples: int = 500) -> ml_collections.ConfigDict:
  """A paper config made small enough for a laptop (big_vision's ``runlocal``): the same
  data, anchors, method and metric, with the from-scratch CPU recipe (``from_scratch``)
  on the space-to-depth tiny YOLOv2 (width 0.5), batch 16, ``steps`` steps at
  ``image_size`` px, evaluated on the first ``eval_examples`` test images. It checks the
  data, the pipeline and the method end to end in well under an hour of CPU; its AP is
  not comparable to the paper's (no pretrained backbone, a small model, a short run)."""
  from_scratch(config, steps=steps)
  config.model.width = 0.5
  config.model.init_parts = "all"
  config.train.batch_size = 16
  scale = image_size / config.input.image_size
  if config.input.eval_image_size:
    config.input.eval_image_size = int(round(config.input.eval_image_size * scale / 32)) * 32
  if config.augment.crop_px:
    config.augment.crop_px = config.augment.crop_px * scale
  config.input.image_size = image_size
  config.dataset.eval_examples = eval_examples
  config.train.log_every = 50
  return config


def faster_rcnn(config: ml_collections.ConfigDict, *, fpn: bool, steps: int,
                lr_drops: tuple[int, int]) -> ml_collections.ConfigDict:
  """Faster R-CNN with learnable RPN anchors (paper Table 7) on Detectron2's recipe.

  Detectron2's R50(-FPN) schedule: batch 16, SGD lr 0.02 (momentum 0.9, weight decay 1e-4)
  after a linear 1000-step warm-up (our burn-in with power 1), x0.1 at ``lr_drops``; frozen
  BN with the stem and res2 frozen; flip-only augmentation; 800 px (square: this codebase
  resizes to one size); test NMS 0.5, score > 0.05, 100 detections. The paper's method on
  it: "without BN or soft assignment trick", i.e. learnable anchors + the online-clustering
  warm-up (``anchors.cluster_*``), T = 0, no BN without shift. Without FPN, all anchor
  sizes sit on the one stride-16 C4 level, with Detectron2's C4 proposal counts.
  """
  config.model.detector = "faster_rcnn"
  config.input.image_size = 800
  config.dataset.max_boxes = 100
  config.rcnn.depth = 50
  config.rcnn.fpn = fpn
  config.rcnn.norm = "frozen_bn"
  if not fpn:
    config.rcnn.rpn_pre_nms_train, config.rcnn.rpn_post_nms_train = 12000, 2000
    config.rcnn.rpn_pre_nms_test, config.rcnn.rpn_post_nms_test = 6000, 1000
  config.augment.jitter = 0.0
  config.augment.hue, config.augment.saturation, config.augment.exposure = 0.0, 1.0, 1.0
  config.anchors.temperature = 0.0
  config.anchors.bn_no_shift = False
  config.anchors.cluster_weight = 1.0
  config.anchors.cluster_steps = 1500
  config.loss.prior_scale = 0.0          # darknet's YOLO-only prior term
  t = config.train
  t.batch_size = 16
  t.steps = steps
  t.lr_shape = "piecewise"
  t.lr_schedule = ((0, 0.02), (lr_drops[0], 0.002), (lr_drops[1], 0.0002))
  t.burn_in_steps, t.burn_in_power = 1000, 1.0
  t.momentum = 0.9
  t.weight_decay = 1e-4
  t.log_every = 100
  t.checkpoint_every = 2000
  config.eval.batch_size = 8
  config.eval.nms_iou = 0.5
  config.eval.score_thresh = 0.05
  config.eval.max_dets = 100
  return config


def from_scratch_rcnn(config: ml_collections.ConfigDict, *, steps: int, image_size: int,
                      width: float) -> ml_collections.ConfigDict:
  """The Faster R-CNN CPU recipe: a ResNet-18 (``width`` x channels) with train-mode BN from
  random init, FPN, the standard anchor sizes scaled to ``image_size`` (32-512 px at 800),
  fewer anchors and RoIs sampled per image, the anchors' lr x10, and the YOLOv2 CPU recipe's
  step schedule
  (lr 2e-2 after a 100-step burn-in, x0.1 at 75 % and 95 %, the clustering warm-up over
  the first quarter, checkpoints and evals at halves, all following ``train.steps``)."""
  config.model.detector = "faster_rcnn"
  config.model.width = width
  config.input.image_size = image_size
  r = config.rcnn
  r.depth, r.fpn, r.norm, r.freeze_at = 18, True, "bn", 0
  scale = image_size / 800
  r.anchor_sizes = tuple(round(s * scale, 2) for s in (32, 64, 128, 256, 512))
  # 64 / 64 and 300 / 150 (per level / per image): a 0.51 s step of rcnn_synthetic.py:cpu,
  # 0.83 s with 128 / 128 and 500 / 300 (idle, 2 cores).
  r.rpn_batch_per_image, r.roi_batch_per_image = 64, 64
  r.rpn_pre_nms_train, r.rpn_post_nms_train = 300, 150
  r.rpn_pre_nms_test, r.rpn_post_nms_test = 500, 300
  r.test_pre_nms = 1000
  config.anchors.temperature = 0.0
  config.anchors.bn_no_shift = False
  config.anchors.lr_mult = 10.0          # as the YOLOv2 CPU recipe: anchors settle in the warm-up
  config.loss.prior_scale = 0.0
  t = config.train
  t.optimizer, t.momentum, t.weight_decay = "sgd", 0.9, 1e-4
  t.lr_shape, t.lr_schedule = "step", ()
  t.peak_lr, t.lr_decay_at, t.lr_decay_factor = 2e-2, (0.75, 0.95), 0.1
  t.burn_in_steps, t.burn_in_power = 100, 4.0
  t.steps = steps
  run = t.get_ref("steps")
  config.anchors.cluster_steps = run // 4
  config.anchors.soft_assign_steps = run // 4
  t.checkpoint_every = run // 2
  config.eval.every_steps = run // 2
  config.eval.nms_iou, config.eval.score_thresh, config.eval.max_dets = 0.5, 0.05, 100
  return config


def runlocal_rcnn(config: ml_collections.ConfigDict, *, steps: int = 2000,
                  image_size: int = 320, eval_examples: int = 500) -> ml_collections.ConfigDict:
  """A Faster R-CNN paper config made small for a laptop: the same data, method and metric
  with ``from_scratch_rcnn`` (ResNet-18 width 0.5 at ``image_size``), batch 16, the first
  ``eval_examples`` test images. A check that it runs on your data, not the paper."""
  from_scratch_rcnn(config, steps=steps, image_size=image_size, width=0.5)
  config.model.init_from = ""
  config.train.batch_size = 16
  config.train.log_every = 50
  config.dataset.eval_examples = eval_examples
  return config


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.dataset = ml_collections.ConfigDict(dict(
      name="synthetic",      # synthetic | voc | coco | brainwash | voc_folder | coco_json
      path="",               # voc_folder/coco_json folder; TFDS data_dir for voc/coco/brainwash
      class_names=(),        # voc_folder: class list (empty: read from the train split)
      train_split="trainval",  # voc_folder: ImageSets/Main/<split>.txt; coco_json: instances_<split>
      eval_split="test",
      image_dir="",          # coco_json: image folder if not <path>/<split>/
      preset="mixed",        # synthetic only: tiny | wide | mixed
      num_classes=0,         # 0: take it from the dataset
      max_boxes=50,          # GT slots per image (padding + mask)
      # Split sizes. Synthetic: the number of images (0: unbounded fresh train images, 256
      # eval images). Real data: the first N examples of the split (0: all of them).
      train_examples=0,
      eval_examples=0,
      prefetch=2,            # batches prepared ahead by a host thread
      workers=0,             # > 0: threads (loader=thread, > 1) or processes preparing batches
      loader="thread",       # thread | grain (worker processes: scales with cores); same batches
  ))

  c.input = ml_collections.ConfigDict(dict(
      image_size=416,        # training input (pixels, multiple of 32)
      eval_image_size=0,     # test-time resize (0: same as image_size)
      multiscale_sizes=(),   # e.g. (320, 352, ..., 608): darknet's multi-scale training
      multiscale_every=10,   # steps between size switches
  ))

  # Training augmentation of real datasets (see anchor_jax/data/augment.py); the synthetic
  # data is generated fresh instead.
  c.augment = ml_collections.ConfigDict(dict(
      jitter=0.2,            # yolo-voc.cfg (2016), the paper's recipe; yolov2-voc.cfg: 0.3
      crop_px=0.0,           # > 0: native-scale square crops of this size (no jitter)
      flip=True,             # data.c load_data_region: a random left-right flip
      hue=0.1, saturation=1.5, exposure=1.5,   # both cfgs
      min_box_px=2.0, min_visible=0.0, fill=0.5,
  ))

  c.model = ml_collections.ConfigDict(dict(
      detector="yolov2",     # yolov2 | faster_rcnn (the rcnn keys below; paper Table 7)
      name="darknet19",      # darknet19 | tiny (yolov2's backbone)
      width=1.0,             # channel multiplier
      bn_momentum=0.99,
      max_pool="window",     # window (nn.max_pool) | reshape (same values, ~5x faster gradient on CPU)
      conv_grad="matmul",    # matmul (conv kernel gradients as matmuls on CPU, faster; XLA's
                             # elsewhere) | xla (model/conv.py: same values up to round-off)
      obj_bias_prior=0.0,    # initial objectness p (bias logit(p), focal-loss prior); 0: zero bias
      dtype="float32",
      reorg="tf",            # passthrough channel order: tf (space-to-depth) | darknet (its
                             # reorg_cpu order: needed by darknet's trained detectors)
      # Pretrained start (training/pretrained.py), applied only when a run starts fresh:
      init_from="",          # "" (random init) | a darknet .weights file | a workdir of ours
      init_parts="all",      # backbone (backbone convs only) | all (every layer; a workdir's
                             # head is re-initialised when the classes differ)
      init_cfg="",           # darknet detector's .cfg (anchors=, layer check); "": NAME.cfg
                             # next to NAME.weights if it exists
      keep_source_anchors=True,  # init_parts=all: start from init_from's anchors (learned /
                                 # cfg anchors=); False: from anchors.init
  ))

  c.anchors = ml_collections.ConfigDict(dict(
      num=5,
      init="kmeans",         # identical | uniform | kmeans | voc | coco | "w,h w,h ..."
      kmeans_images=2000,    # training images whose boxes feed k-means
      optimize=True,         # False = Baseline: anchors get a zero update
      lr_mult=1.0,           # anchors' learning rate = lr * lr_mult
      soft_assign_steps=1500,  # Eq. 10 warm-up length (T: temperature -> 0)
      temperature=2.0,       # T0; 0 disables soft assignment
      cluster_steps=1500,    # Eq. 11 warm-up length (lambda: cluster_weight -> 0)
      cluster_weight=1.0,    # lambda0; 0 disables online clustering
      bn_no_shift=True,      # BatchNorm without shift on t_w, t_h
      assign_metric="iou",   # iou | l2
  ))

  # Faster R-CNN (model.detector=faster_rcnn; training/rcnn_step.py), Detectron2's
  # R50(-FPN) values. Its anchors: anchor_sizes x aspect_ratios (h/w), one size per FPN level
  # (P2-P6) or all sizes on the one C4 level; learnable as params['rpn']['anchor_log_wh']
  # [L, A, 2] (log input pixels) with the online-clustering warm-up (anchors.cluster_*), and
  # no soft assignment or BN without shift (the paper: "without BN or soft assignment trick").
  c.rcnn = ml_collections.ConfigDict(dict(
      depth=50,              # ResNet depth: 18 | 34 | 50 | 101 (model.width scales channels)
      fpn=True,              # P2-P6 with one anchor size per level; False: C4 (stride 16)
      norm="frozen_bn",      # frozen_bn (pretrained backbone) | bn (train-mode, from scratch)
      freeze_at=2,           # stages up to this get no update and frozen BN (2: stem + res2)
      anchor_sizes=(32, 64, 128, 256, 512),   # input px
      aspect_ratios=(0.5, 1.0, 2.0),          # h / w
      anchor_offset=0.0,     # anchor centres at (cell + offset) * stride
      fpn_channels=256,      # FPN output channels (x model.width)
      rpn_channels=0,        # RPN 3x3 conv channels; 0: the feature channels (Detectron2)
      fc_dim=1024,           # box head: two fc layers (x model.width)
      roi_size=7,            # RoIAlign output (roi_size x roi_size), sampling_ratio 2
      rpn_pos_iou=0.7, rpn_neg_iou=0.3,       # anchor labels (best anchor per GT also positive)
      rpn_batch_per_image=256, rpn_pos_fraction=0.5,
      rpn_beta=1.0 / 9,      # smooth-L1 beta of the RPN box loss (0: L1)
      rpn_pre_nms_train=2000, rpn_post_nms_train=1000,   # per level / per image
      rpn_pre_nms_test=1000, rpn_post_nms_test=1000,
      rpn_nms_iou=0.7,
      roi_batch_per_image=512, roi_pos_fraction=0.25,
      roi_fg_iou=0.5,        # RoIs with IoU >= this are foreground, the rest background
      box_weights=(10.0, 10.0, 5.0, 5.0),   # box head delta weights (x, y, w, h)
      box_beta=0.0,          # smooth-L1 beta of the box head loss (0: L1, Detectron2)
      test_pre_nms=2000,     # box-head candidates (RoI x class) kept before the final NMS
  ))

  c.loss = ml_collections.ConfigDict(dict(
      coord_scale=1.0, object_scale=5.0, noobject_scale=1.0, class_scale=1.0,
      ignore_thresh=0.6, rescore=True,
      prior_scale=0.01, prior_images=12800,   # darknet's early pull to the anchors
  ))

  c.train = ml_collections.ConfigDict(dict(
      steps=30000,
      batch_size=64,         # global batch, split over all devices of all hosts
      # piecewise (lr_schedule, absolute steps) | step (peak_lr, lr_decay_at, lr_decay_factor:
      # drops at fractions of train.steps) | cosine (peak_lr, warmup_steps, final_lr_frac)
      lr_shape="piecewise",
      lr_schedule=PAPER_VOC_LR,
      peak_lr=1e-3,          # step, cosine: the lr after burn-in / warm-up
      lr_decay_at=(0.75, 0.95),   # step: fractions of train.steps where lr *= lr_decay_factor
      lr_decay_factor=0.1,   # step
      warmup_steps=0,        # cosine: linear warm-up 0 -> peak_lr (burn-in still multiplies)
      final_lr_frac=0.0,     # cosine: lr at train.steps = peak_lr * final_lr_frac
      # darknet's burn-in, lr * min(1, (step / burn_in) ** power): yolov2-voc.cfg has 1000;
      # 0 here, as the paper's schedule (yolo-voc.cfg's) warms up with 100 steps at 1e-4.
      burn_in_steps=0,
      burn_in_power=4.0,
      optimizer="sgd",       # sgd (darknet) | adamw (Adam, decoupled weight decay)
      momentum=0.9,          # SGD momentum; Adam's b1 with adamw
      adam_b2=0.999,         # adamw only: second-moment decay
      adam_eps=1e-8,         # adamw only
      weight_decay=5e-4,     # kernels only; sgd: L2 added to the gradient, adamw: decoupled
      log_every=100,
      checkpoint_every=1000,
      keep_checkpoints=3,
  ))

  c.eval = ml_collections.ConfigDict(dict(
      every_steps=5000,
      metric="voc07",        # voc07 | voc12 | coco | brainwash
      pixel_convention="auto",  # voc (+1 pixel widths) | continuous | auto: the dataset's
      batch_size=32,
      nms_iou=0.45,
      max_dets=300,
      score_thresh=0.005,
      plot=True,             # write anchors.png (Figure 2) at the end
  ))
  return c
