r"""YOLOv2 on Pascal VOC 07+12 trainval, tested on VOC2007 test (paper §4.2.1, Table 1).

  python -m anchor_jax.main --config=configs/voc_yolov2.py --workdir=runs/voc_opt \
      --config.dataset.path=/data/tfds
  python -m anchor_jax.main --config=configs/voc_yolov2.py --workdir=runs/voc_base \
      --config.dataset.path=/data/tfds --config.anchors.optimize=False \
      --config.anchors.temperature=0 --config.anchors.cluster_weight=0 \
      --config.anchors.bn_no_shift=False          # the paper's Baseline

Paper (416 px, 30k steps, batch 64 on 4 GPUs): Opt (k-means) 77.99 mAP@.5 vs
Baseline (k-means) 76.83; Opt (identical) 78.01, Opt (uniform) 77.95. Variant
``:544`` trains and tests at 544 px (Opt 80.69 vs Baseline 79.45). "k-means" in the
paper means darknet's published VOC anchors (``init=voc``): "The values are borrowed
from the official code of YOLOv2 which are the k-means centers of the ground-truth box
shapes with IoU as the metric"; ``anchors.init=kmeans`` recomputes them from the
training boxes instead.

The paper starts from darknet's ImageNet-pretrained DarkNet-19, ``darknet19_448.conv.23``
(https://pjreddie.com/media/files/darknet19_448.conv.23, fetched on a machine with internet;
README "Pretrained weights"). ``model.init_parts`` is ``backbone`` here, so giving the file
loads the backbone's 18 convs and the head starts fresh:

  python -m anchor_jax.main --config=configs/voc_yolov2.py --workdir=runs/voc_opt \
      --config.dataset.path=/data/tfds --config.model.init_from=darknet19_448.conv.23

darknet's trained VOC detector (``yolov2-voc.weights`` with ``yolov2-voc.cfg`` beside it,
https://pjreddie.com/darknet/yolov2/) scored on VOC2007 test without training; darknet
publishes 76.8 mAP for it at 416 px (not verified here):

  python -m anchor_jax.evaluate --config=configs/voc_yolov2.py \
      --config.dataset.path=/data/tfds --config.model.init_from=yolov2-voc.weights \
      --config.model.init_parts=all --config.model.reorg=darknet

Variant ``:runlocal`` is the same data, anchors and method made small for a laptop
(``anchor_jax.defaults.runlocal``: the from-scratch CPU recipe on tiny YOLOv2 at 320 px,
2000 steps, the first 500 test images): a check that everything runs on your data, not a
reproduction of the paper:

  python -m anchor_jax.main --config=configs/voc_yolov2.py:runlocal --workdir=runs/voc_local \
      --config.dataset.path=/data/tfds

Each choice and the paper's sentence behind it (§4.2.1):
* schedule, no burn-in: "The learning rate is set to step-wise schedule: (0∼100,1e-4),
  (100∼15000,1e-3), (15000∼27000,1e-4), (27000∼30000, 1e-5)" -- the first 100 steps at
  1e-4 are the warm-up of the original yolo-voc.cfg; darknet's later burn_in=1000 is not
  stacked on top of it;
* steps, batch, momentum: "trained with 30,000 iterations of SGD (Momentum = 0.9) with
  mini-batches of 64 images";
* one input size, no multi-scale: "The training image height and width is 416 or 544
  pixels, matching the test image size";
* augmentation: "We also employ the same data augmentation techniques as in YOLOv2,
  including random jittering, scaling, and random hue, exposure, saturation change" --
  yolo-voc.cfg's jitter 0.2, hue .1, saturation and exposure 1.5 (anchor_jax.defaults).
"""
from anchor_jax import defaults


def get_config(arg: str = "416"):
  """``416`` | ``544``: the paper's recipe at that size; ``runlocal``: a laptop check."""
  if arg not in ("416", "544", "runlocal"):
    raise ValueError(f"Unknown variant {arg!r} of configs/voc_yolov2.py: 416 | 544 | runlocal.")
  config = defaults.base_config()
  config.dataset.name = "voc"            # TFDS voc/2007 + voc/2012
  config.dataset.num_classes = 20
  config.dataset.max_boxes = 50
  config.model.name = "darknet19"
  config.model.init_parts = "backbone"   # --config.model.init_from=darknet19_448.conv.23
  size = 416 if arg == "runlocal" else int(arg)
  config.input.image_size = size         # 416 or 544, the test size
  config.input.eval_image_size = size
  config.input.multiscale_sizes = ()
  config.anchors.init = "voc"
  config.train.steps = 30000
  config.train.batch_size = 64
  config.train.lr_schedule = defaults.PAPER_VOC_LR
  config.train.burn_in_steps = 0
  config.eval.metric = "voc07"
  config.eval.every_steps = 5000
  if arg == "runlocal":
    defaults.runlocal(config)
  return config
