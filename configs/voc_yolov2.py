r"""YOLOv2 on Pascal VOC 07+12 trainval, tested on VOC2007 test (paper §4.2.1, Table 1).

  python -m anchor_jax.main --config=configs/voc_yolov2.py --workdir=runs/voc_opt
  python -m anchor_jax.main --config=configs/voc_yolov2.py --workdir=runs/voc_base \
      --config.anchors.optimize=False

Paper (416 px, 30k steps, batch 64 on 4 GPUs): Opt (k-means) 77.99 mAP@.5 vs
Baseline (k-means) 76.83; Opt (identical) 78.01, Opt (uniform) 77.95. Variant
``:544`` trains and tests at 544 px (Opt 80.69 vs Baseline 79.45).
"k-means" in the paper means darknet's published VOC anchors (``init=voc``);
``anchors.init=kmeans`` recomputes them from the training boxes instead.
The paper starts from an ImageNet-pretrained DarkNet-19 (not bundled here).
"""
from anchor_jax import defaults


def get_config(arg: str = "416"):
  config = defaults.base_config()
  config.dataset.name = "voc"            # TFDS voc/2007 + voc/2012
  config.dataset.num_classes = 20
  config.dataset.max_boxes = 50
  config.model.name = "darknet19"
  config.input.image_size = int(arg)
  config.input.eval_image_size = int(arg)
  config.input.multiscale_sizes = tuple(range(320, 608 + 1, 32))  # darknet random=1
  config.anchors.init = "voc"
  config.train.steps = 30000
  config.train.batch_size = 64
  config.train.lr_schedule = defaults.PAPER_VOC_LR
  config.eval.metric = "voc07"
  config.eval.every_steps = 5000
  return config
