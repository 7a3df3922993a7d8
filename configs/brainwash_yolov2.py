r"""YOLOv2 head detection on Brainwash (paper §4.2.3, Table 5).

  python -m anchor_jax.main --config=configs/brainwash_yolov2.py --workdir=runs/bw_opt \
      --config.dataset.path=/data/tfds

Paper (train crops 320 px, test 640 px, 10k steps, no random scaling, no class
loss, 5 anchors): Opt (k-means) 80.18 AP50 vs Baseline (k-means) 78.98;
Opt (identical) 79.85, Opt (uniform) 79.86; Baseline (coco anchors) 77.96.

Pretrained start as the paper's: darknet's ImageNet DarkNet-19
(https://pjreddie.com/media/files/darknet19_448.conv.23; README "Pretrained weights"), the
backbone only (``model.init_parts=backbone`` here; darknet publishes no Brainwash detector):

  python -m anchor_jax.main --config=configs/brainwash_yolov2.py --workdir=runs/bw_opt \
      --config.dataset.path=/data/tfds --config.model.init_from=darknet19_448.conv.23

Variant ``:runlocal`` is the same data, anchors and method made small for a laptop
(``anchor_jax.defaults.runlocal``: the from-scratch CPU recipe on tiny YOLOv2 at 320 px,
2000 steps, the first 500 test images): a check that everything runs on your data, not a
reproduction of the paper:

  python -m anchor_jax.main --config=configs/brainwash_yolov2.py:runlocal \
      --workdir=runs/brainwash_local --config.dataset.path=/data/tfds

Each choice and the paper's sentence behind it (§4.2.3):
* "We train the detection model for 10,000 steps, with learning rate schedule
  (0∼100,1e-4), (100∼5,000,1e-3), (5,000∼9,000,1e-4), (9,000∼10,000, 1e-5)" (no
  burn-in on top);
* native-scale crops: "No random scaling augmentation is used since the camera is still,
  while other kinds of data augmentation remain unchanged. The image crop size during
  training is 320, and the test image size is 640" -- training takes 320 x 320 crops of
  the 640 x 480 frames at their own scale (``augment.crop_px=320``, ``jitter=0``), so a
  head has the same pixel size in training as in the 640-wide test input (the test
  frame is resized to 640 x 640, a plain resize as darknet's test);
* "We still choose to employ 5 anchor shapes. No classification loss is applied since
  there is only one category (head)".
"""
from anchor_jax import defaults

# Paper §4.2.3: (0-100: 1e-4), (100-5k: 1e-3), (5k-9k: 1e-4), (9k-10k: 1e-5).
PAPER_BRAINWASH_LR = ((0, 1e-4), (100, 1e-3), (5000, 1e-4), (9000, 1e-5))


def get_config(arg: str = "paper"):
  """``paper``: the paper's recipe; ``runlocal``: a laptop check (see the docstring)."""
  if arg not in ("paper", "runlocal"):
    raise ValueError(f"Unknown variant {arg!r} of configs/brainwash_yolov2.py: paper | runlocal.")
  config = defaults.base_config()
  config.dataset.name = "brainwash"
  config.dataset.num_classes = 1
  config.dataset.max_boxes = 64
  config.model.name = "darknet19"
  config.model.init_parts = "backbone"   # --config.model.init_from=darknet19_448.conv.23
  config.input.image_size = 320
  config.input.eval_image_size = 640
  config.input.multiscale_sizes = ()       # paper: no random scaling (still camera)
  config.augment.jitter = 0.0
  config.augment.crop_px = 320.0           # native-scale 320 px crops of the frames
  config.anchors.init = "kmeans"
  config.loss.class_scale = 0.0            # single class: no classification loss
  config.train.steps = 10000
  config.train.batch_size = 64
  config.train.lr_schedule = PAPER_BRAINWASH_LR
  config.train.burn_in_steps = 0
  config.eval.metric = "brainwash"
  config.eval.every_steps = 2000
  if arg == "runlocal":
    defaults.runlocal(config)
  return config
