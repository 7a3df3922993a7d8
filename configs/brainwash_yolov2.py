r"""YOLOv2 head detection on Brainwash (paper §4.2.3, Table 5).

  python -m anchor_jax.main --config=configs/brainwash_yolov2.py --workdir=runs/bw_opt \
      --config.dataset.path=/data/brainwash

Paper (train crops 320 px, test 640 px, 10k steps, no random scaling, no class
loss, 5 anchors): Opt (k-means) 80.18 AP50 vs Baseline (k-means) 78.98;
Opt (identical) 79.85, Opt (uniform) 79.86; Baseline (coco anchors) 77.96.
"""
from anchor_jax import defaults

# Paper §4.2.3: (0-100: 1e-4), (100-5k: 1e-3), (5k-9k: 1e-4), (9k-10k: 1e-5).
PAPER_BRAINWASH_LR = ((0, 1e-4), (100, 1e-3), (5000, 1e-4), (9000, 1e-5))


def get_config():
  config = defaults.base_config()
  config.dataset.name = "brainwash"
  config.dataset.num_classes = 1
  config.dataset.max_boxes = 64
  config.model.name = "darknet19"
  config.input.image_size = 320
  config.input.eval_image_size = 640
  config.input.multiscale_sizes = ()       # paper: no random scaling (still camera)
  config.anchors.init = "kmeans"
  config.loss.class_scale = 0.0          # single class: no classification loss
  config.train.steps = 10000
  config.train.batch_size = 64
  config.train.lr_schedule = PAPER_BRAINWASH_LR
  config.eval.metric = "brainwash"
  config.eval.every_steps = 2000
  return config
