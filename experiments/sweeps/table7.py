"""Table 7: Faster R-CNN with fixed (Baseline) vs learnable (Opt) RPN anchors.

  python -m experiments.run experiments/sweeps/table7.py:cpu --workdir_root=runs/table7 --seeds=3
  python -m experiments.run experiments/sweeps/table7.py:voc07 --workdir_root=runs/t7_voc07 \
      --override=--config.dataset.path=/data/tfds \
      --override=--config.model.init_from=resnet50_imagenet.npz

The paper applies the method to Faster R-CNN "without BN or soft assignment trick": Opt =
learnable anchors + the online-clustering warm-up; Baseline = the same detector with the
anchors frozen and no clustering term. Variants: ``cpu`` (configs/rcnn_synthetic.py on
the ``mixed`` preset, the CPU-scale check), ``cpu_tiny`` / ``cpu_wide`` (the other presets),
``voc07``, ``voc0712``, ``voc0712_fpn`` (configs/voc_faster_rcnn.py), ``coco``
(configs/coco_faster_rcnn.py). Metrics: AP50 (AP for COCO) and RPN recall at 50 / 100 / 300
proposals (``RPN_recall@k`` in eval.jsonl).
"""
from experiments.sweeps import _common as common

BASELINE = ("--config.anchors.optimize=False", "--config.anchors.cluster_weight=0")
OPT = ("--config.anchors.optimize=True",)
PAPER_RUNS = {   # variant -> (config, paper name, {metric: {row: {col: value}}})
    "voc07": ("configs/voc_faster_rcnn.py:07", "ResNet50, VOC 07",
              {"AP50": {"Faster R-CNN": {"Baseline": 73.03, "Opt": 73.59}}}),
    "voc0712": ("configs/voc_faster_rcnn.py:0712", "ResNet50, VOC 07+12",
                {"AP50": {"Faster R-CNN": {"Baseline": 78.52, "Opt": 79.02}}}),
    "voc0712_fpn": ("configs/voc_faster_rcnn.py:0712_fpn", "ResNet50 FPN, VOC 07+12",
                    {"AP50": {"Faster R-CNN": {"Baseline": 80.94, "Opt": 81.46}}}),
    "coco": ("configs/coco_faster_rcnn.py", "ResNet50 FPN, COCO 2017",
             {"AP": {"Faster R-CNN": {"Baseline": 36.78, "Opt": 37.09}},
              "RPN_recall@50": {"Faster R-CNN": {"Baseline": 41.77, "Opt": 42.60}},
              "RPN_recall@100": {"Faster R-CNN": {"Baseline": 47.77, "Opt": 48.28}}}),
}
CPU_CONFIG = "configs/rcnn_synthetic.py:cpu"
METRICS = ("AP50", "AP", "RPN_recall@50", "RPN_recall@100", "RPN_recall@300", "RPN_AR@100")
VARIANTS = ("cpu", "cpu_mixed", "cpu_tiny", "cpu_wide", *PAPER_RUNS)


def get_sweep(arg: str = "cpu") -> dict:
  preset = common.cpu_preset(arg)
  if preset is not None:
    config, base, paper = CPU_CONFIG, common.preset(preset), None
    where = f"synthetic `{preset}` preset, CPU"
  elif arg in PAPER_RUNS:
    config, where, paper = PAPER_RUNS[arg]
    base = []
  else:
    raise common.unknown(arg, VARIANTS)
  runs = [{"name": "rcnn_baseline", "overrides": list(BASELINE), "row": "Faster R-CNN",
           "col": "Baseline"},
          {"name": "rcnn_opt", "overrides": list(OPT), "row": "Faster R-CNN", "col": "Opt"}]
  table = {"row_header": "Detector", "rows": ["Faster R-CNN"], "cols": ["Baseline", "Opt"],
           "diff": {"along": "cols", "base": "Baseline"}, "metrics": METRICS}
  if paper:
    table["paper"] = paper
  return {"title": f"Table 7: Faster R-CNN, fixed vs learned RPN anchors ({where})",
          "config": config, "base": base, "runs": runs, "table": table}
