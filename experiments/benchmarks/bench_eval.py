"""Time of evaluation: VOC AP, COCO AP (pycocotools) and class-wise NMS.

A seeded VOC07-test-sized set: 4,952 images, 20 classes, ~12k GTs (10% difficult),
300 detections per image (~1.49M: jittered copies of the GTs with high scores plus
background boxes with low scores). Prints medians of VOC AP (11-point, all-point;
the bare voc_evaluate and the DetectionEvaluator path the training loop uses), of
COCO AP via pycocotools, and NMS throughput (images/s) on 13×13×5 = 845 candidates
× 20 classes for the host (NumPy) and device (jnp) versions. Target: VOC AP ≤ 5 s.
Run:  python experiments/benchmarks/bench_eval.py   (--coco_repeats=0 skips COCO)
      python experiments/benchmarks/bench_eval.py --images=200 --repeats=1 --nms_repeats=1
"""
import time

import jax
import numpy as np
from absl import app, flags

from anchor_jax.evaluation import accumulator, decode, voc_metric
from anchor_jax.evaluation import nms as nms_lib

FLAGS = flags.FLAGS
flags.DEFINE_integer("seed", 0, "Seed of the synthetic set and the NMS inputs.")
flags.DEFINE_integer("images", 4952, "Images in the set (VOC07 test: 4952).")
flags.DEFINE_integer("classes", 20, "Number of classes.")
flags.DEFINE_float("gts_per_image", 12032 / 4952, "Mean GTs per image (Poisson).")
flags.DEFINE_integer("dets_per_image", 300, "Detections per image.")
flags.DEFINE_integer("repeats", 5, "Timed repeats of each VOC AP computation (median).")
flags.DEFINE_integer("coco_repeats", 1, "Timed repeats of COCO AP; 0 skips COCO.")
flags.DEFINE_integer("nms_batch", 64, "Images per NMS call.")
flags.DEFINE_integer("nms_repeats", 7, "Timed NMS calls per backend (median).")
flags.DEFINE_integer("grid", 13, "Output grid side of the NMS inputs.")
flags.DEFINE_float("score_threshold", 0.005, "NMS score threshold.")

VOC_ANCHORS = [[1.3221, 1.73145], [3.19275, 4.00944], [5.05587, 8.09892],
               [9.47112, 4.84053], [11.2364, 10.0071]]


def make_voc_like_set(rng, *, num_images, num_classes, gts_per_image, dets_per_image,
                      difficult_fraction):
  """Flat GT and detection arrays of a VOC-test-like set (pixel xyxy boxes)."""
  hw = rng.integers(300, 501, (num_images, 2)).astype(np.float64)  # [I, 2]
  counts = rng.poisson(gts_per_image, num_images)
  gt_image = np.repeat(np.arange(num_images), counts)  # [G]
  size = hw[gt_image][:, ::-1]  # [G, 2] (w, h)
  wh = rng.uniform(0.05, 0.8, (gt_image.size, 2)) * size
  lo = rng.uniform(0, 1, (gt_image.size, 2)) * (size - wh)
  gt = dict(image=gt_image, boxes=np.concatenate([lo, lo + wh], 1),
            classes=rng.integers(0, num_classes, gt_image.size),
            difficult=rng.uniform(size=gt_image.size) < difficult_fraction)
  # Detections: up to 20 jittered copies per GT (scores high), background fills to M.
  d = num_images * dets_per_image
  det_image = np.repeat(np.arange(num_images), dets_per_image)  # [D]
  slot = np.tile(np.arange(dets_per_image), num_images)  # [D]
  n_gt = counts[det_image]
  on_gt = slot < 20 * n_gt
  first_gt = (np.cumsum(counts) - counts)[det_image]
  src = first_gt + np.where(on_gt, slot % np.maximum(n_gt, 1), 0)  # [D]
  src = np.minimum(src, max(gt_image.size - 1, 0))
  size_d = hw[det_image][:, ::-1]
  bg_wh = rng.uniform(0.05, 0.8, (d, 2)) * size_d
  bg_lo = rng.uniform(0, 1, (d, 2)) * (size_d - bg_wh)
  background = np.concatenate([bg_lo, bg_lo + bg_wh], 1)
  src_boxes = gt["boxes"][src]
  jitter = rng.normal(0, 0.1, (d, 4)) * np.tile(src_boxes[:, 2:] - src_boxes[:, :2], 2)
  boxes = np.where(on_gt[:, None], src_boxes + jitter, background)
  keep_class = on_gt & (rng.uniform(size=d) < 0.8)
  classes = np.where(keep_class, gt["classes"][src], rng.integers(0, num_classes, d))
  scores = np.where(on_gt, rng.uniform(0.2, 1.0, d), rng.uniform(0, 0.55, d) ** 2)
  det = dict(image=det_image, boxes=boxes, classes=classes, scores=scores.astype(np.float32))
  return hw, gt, det


def _median_s(fn, repeats):
  """Median wall time in seconds of ``repeats`` calls of ``fn()``."""
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def bench_voc(hw, gt, det, *, num_classes, repeats):
  """Prints the time of VOC07 and VOC12 AP: bare voc_evaluate and DetectionEvaluator."""
  for metric in ("voc07", "voc12"):
    def bare():
      """VOC AP of the whole set by the bare voc_evaluate."""
      return voc_metric.voc_evaluate(
          gt_image=gt["image"], gt_class=gt["classes"], gt_boxes=gt["boxes"],
          gt_difficult=gt["difficult"], det_image=det["image"], det_class=det["classes"],
          det_scores=det["scores"], det_boxes=det["boxes"], num_classes=num_classes,
          **accumulator.VOC_METRICS[metric])
    mean_ap = bare().mean_ap
    t_bare = _median_s(bare, repeats)
    ev = _filled_evaluator(metric, hw, gt, det, num_classes=num_classes)
    t_ev = _median_s(ev.compute, repeats)
    print(f"VOC AP {metric}: voc_evaluate {t_bare:.2f} s, DetectionEvaluator.compute "
          f"{t_ev:.2f} s (median of {repeats}; mAP {mean_ap:.4f})")


def _filled_evaluator(metric, hw, gt, det, *, num_classes, batch=64):
  """A DetectionEvaluator fed as the training loop feeds it (padded batches)."""
  ev = accumulator.DetectionEvaluator(
      metric=metric, class_names=[f"class{c}" for c in range(num_classes)],
      category_ids=list(range(1, num_classes + 1)))
  bounds = np.searchsorted(gt["image"], np.arange(len(hw) + 1))
  for i in range(len(hw)):
    sl = slice(bounds[i], bounds[i + 1])
    ev.add_ground_truth(i, gt["boxes"][sl], gt["classes"][sl], difficult=gt["difficult"][sl],
                        image_hw=hw[i])
  num_images = len(hw)
  dets_per_image = det["image"].size // num_images
  per_image = {k: v.reshape(num_images, dets_per_image, *v.shape[1:]) for k, v in det.items()}
  t0 = time.perf_counter()
  for start in range(0, num_images, batch):
    sl = slice(start, start + batch)
    ev.add_batch(list(range(num_images))[sl], per_image["boxes"][sl], per_image["scores"][sl],
                 per_image["classes"][sl], np.ones_like(per_image["scores"][sl], bool))
  print(f"  ({metric}: add_batch of {num_images} images took {time.perf_counter() - t0:.2f} s)")
  return ev


def bench_coco(hw, gt, det, *, num_classes, repeats):
  """Prints the time of COCO AP (pycocotools) through DetectionEvaluator.compute."""
  ev = _filled_evaluator("coco", hw, gt, det, num_classes=num_classes)
  result = {}

  def run():
    """One COCO AP computation, keeping its result for the printout."""
    result.update(ev.compute())
  t = _median_s(run, repeats)
  t_export = _median_s(ev.coco_results, repeats)
  print(f'COCO AP (pycocotools, via DetectionEvaluator.compute): {t:.1f} s '
        f'(median of {repeats}; of which export to results format {t_export:.1f} s; '
        f'AP {result["AP"]:.4f}, AP50 {result["AP50"]:.4f})')


def make_nms_inputs(rng, *, batch, grid, num_classes, scenario):
  """Decoded [B, N, 4] boxes and [B, N, C] scores for an NMS scenario.

  'typical': raw outputs drawn so that objectness is mostly tiny, as in a trained
  detector (t_o ~ N(-6, 2.5), class logits ~ N(0, 3)). 'dense': every (box, class)
  pair scores above the threshold (worst case).
  """
  shape = (batch, grid, grid, len(VOC_ANCHORS))
  out = np.concatenate([
      rng.normal(0, 1, shape + (2,)), rng.normal(0, 0.5, shape + (2,)),
      rng.normal(-6, 2.5, shape + (1,)), rng.normal(0, 3, shape + (num_classes,))], -1)
  boxes, scores = decode.decode(out.astype(np.float32), np.log(np.asarray(VOC_ANCHORS)))
  boxes, scores = np.asarray(boxes), np.asarray(scores)
  if scenario == "dense":
    scores = rng.uniform(0.01, 1.0, scores.shape).astype(np.float32)
  return boxes, scores


def bench_nms(rng, *, batch, grid, num_classes, repeats, score_threshold):
  """Prints host and device NMS throughput (images/s) for the typical and dense scenarios."""
  print(f"NMS: {grid}x{grid}x{len(VOC_ANCHORS)} = {grid * grid * len(VOC_ANCHORS)} candidates "
        f"x {num_classes} classes, batch {batch}, IoU 0.45, score > {score_threshold}, top 300; "
        f"device: {jax.devices()[0].device_kind}")
  kwargs = dict(iou_threshold=0.45, score_threshold=score_threshold, max_dets=300)
  for scenario in ("typical", "dense"):
    boxes, scores = make_nms_inputs(rng, batch=batch, grid=grid, num_classes=num_classes,
                                    scenario=scenario)
    pairs = float(np.mean(np.sum(scores > score_threshold, axis=(1, 2))))
    boxes_d, scores_d = jax.device_put(boxes), jax.device_put(scores)
    host = lambda: nms_lib.nms_host(boxes, scores, **kwargs)  # noqa: E731
    device = lambda: jax.block_until_ready(  # noqa: E731
        nms_lib.nms_device(boxes_d, scores_d, **kwargs))
    a, b = host(), device()  # compile, and check they agree
    assert np.array_equal(a.indices, np.asarray(b.indices)), "host and device NMS differ"
    assert np.array_equal(a.classes, np.asarray(b.classes)), "host and device NMS differ"
    t_host, t_dev = [], []
    for _ in range(repeats):  # interleaved, so that machine load hits both alike
      t_host.append(_median_s(host, 1))
      t_dev.append(_median_s(device, 1))
    ips_host, ips_dev = batch / np.median(t_host), batch / np.median(t_dev)
    print(f"  {scenario:8s} ({pairs:7.0f} pairs/img above threshold, "
          f"{float(np.mean(a.valid.sum(1))):5.1f} kept/img): host {ips_host:7.1f} img/s, "
          f"device {ips_dev:7.1f} img/s, host/device {ips_host / ips_dev:.2f}")


def main(argv):
  """Builds the seeded set and prints the VOC AP, COCO AP and NMS timings."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  rng = np.random.default_rng(FLAGS.seed)
  hw, gt, det = make_voc_like_set(
      rng, num_images=FLAGS.images, num_classes=FLAGS.classes,
      gts_per_image=FLAGS.gts_per_image, dets_per_image=FLAGS.dets_per_image,
      difficult_fraction=0.1)
  print(f'set: {FLAGS.images} images, {FLAGS.classes} classes, {gt["image"].size} GTs '
        f'({int(gt["difficult"].sum())} difficult), {det["image"].size} detections')
  bench_voc(hw, gt, det, num_classes=FLAGS.classes, repeats=FLAGS.repeats)
  if FLAGS.coco_repeats:
    bench_coco(hw, gt, det, num_classes=FLAGS.classes, repeats=FLAGS.coco_repeats)
  bench_nms(rng, batch=FLAGS.nms_batch, grid=FLAGS.grid, num_classes=FLAGS.classes,
            repeats=FLAGS.nms_repeats, score_threshold=FLAGS.score_threshold)


if __name__ == "__main__":
  app.run(main)
