"""What the sweep files share: the methods as override lists, configs, variant args.

Methods (paper §4):
* *Baseline* is the paper's plain YOLOv2 with fixed anchors: the anchors get a zero update
  (``anchors.optimize=False``), hard assignment from the first step (``temperature=0``),
  no online-clustering term (``cluster_weight=0``) and the ordinary head
  (``bn_no_shift=False``). The paper's Table 6 text: "the BN trick alone does not bring
  any noticeable change to the performance of the Baseline", i.e. its Baseline has none
  of the three warm-ups.
* *Opt* learns the anchors with the config's warm-ups (soft assignment, online
  clustering, BN without shift), each of which ``opt()`` can switch off (Table 6).
* *Frozen + warm-ups* (``FROZEN_WARMUPS``, an extra Table 6 row, not in the paper): Opt's
  graph and warm-ups with the anchors frozen, which separates what the warm-ups do to the
  network from what learning the anchors does.
A warm-up that is on keeps the config's own T0 / lambda0 and schedule length.
"""
from __future__ import annotations

CPU_CONFIG = "configs/synthetic.py:study"
PRESETS = ("mixed", "tiny", "wide")    # synthetic stand-ins: VOC-like, Brainwash-like, extreme
# What a preset's study runs change besides the preset: `tiny` stands in for Brainwash, one
# class (heads), so its runs detect one class, as the paper's Brainwash runs.
PRESET_OVERRIDES = {"tiny": ("--config.dataset.num_classes=1",)}

# Paper recipes, and what the paper calls "k-means" init on each: darknet's published
# sets for VOC and COCO (configs/voc_yolov2.py), IoU k-means of the training boxes else.
PAPER_CONFIGS = {
    "voc": "configs/voc_yolov2.py",
    "voc544": "configs/voc_yolov2.py:544",
    "coco": "configs/coco_yolov2.py",
    "brainwash": "configs/brainwash_yolov2.py",
}
PAPER_KMEANS = {"voc": "voc", "voc544": "voc", "coco": "coco", "brainwash": "kmeans"}
PAPER_NAMES = {"voc": "Pascal VOC 2007", "voc544": "Pascal VOC 2007 (544 px)",
               "coco": "COCO 2017 val", "brainwash": "Brainwash"}

BASELINE = ("--config.anchors.optimize=False", "--config.anchors.temperature=0",
            "--config.anchors.cluster_weight=0", "--config.anchors.bn_no_shift=False")
FROZEN_WARMUPS = ("--config.anchors.optimize=False", "--config.anchors.bn_no_shift=True")


def opt(*, soft: bool = True, clust: bool = True, bn: bool = True) -> list[str]:
  """Overrides for Opt with the chosen warm-ups (off = disabled, on = the config's)."""
  out = ["--config.anchors.optimize=True", f"--config.anchors.bn_no_shift={bn}"]
  if not soft:
    out.append("--config.anchors.temperature=0")
  if not clust:
    out.append("--config.anchors.cluster_weight=0")
  return out


def init(name: str) -> str:
  return f"--config.anchors.init={name}"


def run_name(init_name: str, method: str, *, num_anchors: int = 5) -> str:
  """The one name of a run across sweep files, e.g. ``kmeans_baseline``, ``A3_identical_opt``.

  The same run (same init, method and anchor count) gets the same name in Table 1, Table 6,
  Figure 4 and the warm-up grid, so sweeps sharing a ``--workdir_root`` share its runs (the
  runner skips a finished one) instead of training it again."""
  base = f"{init_name.replace('-', '')}_{method}"
  return base if num_anchors == 5 else f"A{num_anchors}_{base}"


def preset(name: str) -> list[str]:
  """The overrides of a CPU study run on the synthetic preset ``name``."""
  return [f"--config.dataset.preset={name}", *PRESET_OVERRIDES.get(name, ())]


def cpu_variants() -> tuple[str, ...]:
  return ("cpu",) + tuple(f"cpu_{p}" for p in PRESETS)


def cpu_preset(arg: str) -> str | None:
  """``cpu`` -> the default preset (mixed), ``cpu_<preset>`` -> that preset, else None."""
  if arg == "cpu":
    return PRESETS[0]
  if arg.startswith("cpu_") and arg[4:] in PRESETS:
    return arg[4:]
  return None


def paper_variants(datasets=tuple(PAPER_CONFIGS)) -> tuple[str, ...]:
  """``paper`` (= VOC) plus ``paper_<dataset>`` for each of ``datasets`` but VOC."""
  return ("paper",) + tuple(f"paper_{d}" for d in datasets if d != "voc")


def paper_dataset(arg: str) -> str | None:
  """``paper`` -> "voc", ``paper_<dataset>`` -> that dataset, else None."""
  if arg == "paper":
    return "voc"
  if arg.startswith("paper_") and arg[6:] in PAPER_CONFIGS:
    return arg[6:]
  return None


def unknown(arg: str, variants) -> ValueError:
  return ValueError(f"Unknown sweep variant {arg!r}: choose one of {', '.join(variants)}.")


def cpu_or_voc(arg: str, variants) -> tuple[str, list[str], str]:
  """(config, base overrides, description) for ``cpu[_preset]`` or ``paper`` (VOC)."""
  preset_name = cpu_preset(arg)
  if preset_name is not None:
    return CPU_CONFIG, preset(preset_name), f"synthetic `{preset_name}`, CPU study"
  if arg == "paper":
    return PAPER_CONFIGS["voc"], [], PAPER_NAMES["voc"]
  raise unknown(arg, variants)
