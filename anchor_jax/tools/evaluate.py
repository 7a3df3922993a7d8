"""Score detections, or a training run's latest checkpoint; prints the AP table (one
JSON object with ``--json``).

  python -m anchor_jax.evaluate --gt=GT.json --dets=DETS.json --metric=voc07|voc12|coco|brainwash
  python -m anchor_jax.evaluate --workdir=DIR [--export=DETS.json]
  python -m anchor_jax.evaluate --config=configs/voc_yolov2.py --config.dataset.path=DIR \
      --config.model.init_from=yolov2-voc.weights --config.model.init_parts=all \
      --config.model.reorg=darknet [--export=DETS.json]

``--gt`` is COCO-format ground truth (annotations may carry ``"difficult": 1``), ``--dets``
a COCO results list (``anchor_jax/evaluation/coco_files.py`` gives the format). Boxes are
scored exactly as given (nothing is clipped). The text report shows AP50 (COCO: AP,
AP50, AP75 and by size), the class-agnostic AP50 and the AP of each class, in percent.
The JSON has ``AP50``, ``AP50_agnostic`` (all classes merged), ``AP`` (coco),
``per_class`` {category name: AP}, ``num_dropped`` (detections with a NaN/inf score or
box, or no area) and ``num_dropped_gt`` (GT boxes without area). With
``--pixel_convention=voc`` (the default for voc07/voc12) the devkit's numbers come out
exactly when the GT holds the XML corners as x = xmin, w = xmax - xmin (as TFDS's voc
boxes, times the image size, do); converters that write w = xmax - xmin + 1 make every GT
one pixel wider.

``--workdir`` evaluates the newest readable checkpoint of a training run (an unreadable one
is moved aside with a warning) on the eval split of the config it was trained with (kept
in the checkpoint), with its ``eval.metric``; appends the result to ``DIR/eval.jsonl`` (as
training does) and can export the detections in COCO results format.

``--config`` (without ``--workdir``) evaluates pretrained weights without training: the
model of that config, initialised from ``--config.model.init_from`` (a darknet detector's
``.weights``, or a workdir of ours, with ``init_parts=all``; see
``anchor_jax/training/pretrained.py``), on the config's eval split with its
``eval.metric``. Nothing is written but ``--export``.

A malformed file, an unknown image or category id, or a missing workdir: one line on
stderr, exit status 2.
"""
from __future__ import annotations

import ml_collections
from absl import flags

from anchor_jax import config_lib
from anchor_jax import workdir as workdir_lib
from anchor_jax.analysis import report_text
from anchor_jax.core import anchors as anchors_lib
from anchor_jax.data import pipeline
from anchor_jax.evaluation import accumulator, coco_files, runner
from anchor_jax.model import yolov2
from anchor_jax.tools import cli
from anchor_jax.training import checkpoint as ckpt_lib
from anchor_jax.training import pretrained, train


def define_flags(fv: flags.FlagValues, argv) -> None:
  cli.define_config(fv, argv, help_string="Experiment config (path/to/config.py[:variant]) "
                    "whose model is evaluated from --config.model.init_from.")
  flags.DEFINE_string("gt", None, "COCO-format ground-truth JSON.", flag_values=fv)
  flags.DEFINE_string("dets", None, "COCO results-format detections JSON.", flag_values=fv)
  flags.DEFINE_enum("metric", "voc07", accumulator.METRICS, "Metric for --gt/--dets.",
                    flag_values=fv)
  flags.DEFINE_enum("pixel_convention", "auto", ("auto",) + accumulator.PIXEL_CONVENTIONS,
                    "For --gt/--dets with voc07/voc12/brainwash: 'voc' adds the devkit's +1 "
                    "pixel to widths (VOC data), 'continuous' does not (COCO-style "
                    "coordinates); auto: voc for voc07/voc12, continuous for brainwash.",
                    flag_values=fv)
  flags.DEFINE_string("workdir", None, "Training workdir: evaluate its latest checkpoint.",
                      flag_values=fv)
  flags.DEFINE_string("export", None, "With --workdir or --config: write the detections "
                      "(COCO results) here.", flag_values=fv)
  cli.define_json(fv)


def render(result: dict) -> str:
  """The AP table of one evaluation result (``report_text.eval_blocks``)."""
  return report_text.to_text(report_text.eval_blocks(result))


def evaluate_workdir(workdir: str, *, export_path: str | None = None) -> dict:
  """Evaluates the latest checkpoint of a training workdir on its eval split and appends
  the result to ``eval.jsonl`` (as the training loop does)."""
  config = workdir_lib.read_config(workdir)
  checkpointer = ckpt_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                       create=False)
  try:
    restored = checkpointer.newest_readable(
        lambda step: (step, *checkpointer.restore_raw(step)))
    if restored is None:
      raise workdir_lib.WorkdirError(f"No checkpoint in {checkpointer.directory}; train first.")
    step, state, meta = restored
  finally:
    checkpointer.close()
  if "config" in meta:   # the config the checkpoint was trained with (config.json may be newer)
    config = ml_collections.ConfigDict(meta["config"])
  eval_ds = pipeline.build_dataset(config, "eval")
  num_classes = config.dataset.num_classes or len(eval_ds.class_names)
  placeholder = train.initial_anchors(config, None) if train.is_rcnn(config) \
      else [[1.0, 1.0]] * config.anchors.num   # only shapes the params: the saved ones are used
  model = train.build_model(config, num_classes=num_classes, anchors=placeholder)
  evaluator = runner.Evaluator(config, eval_ds, model=model)
  result = evaluator.run(state["params"], state["batch_stats"], export_path=export_path)
  workdir_lib.append_eval(workdir, step, "eval", result)
  return {**result, "step": step}


def evaluate_pretrained(config, *, export_path: str | None = None) -> dict:
  """Evaluates ``config``'s model initialised from ``config.model.init_from`` (whole
  detector: ``init_parts=all``) on the config's eval split; writes nothing but
  ``export_path``."""
  config_lib.validate(config)
  if train.is_rcnn(config):
    raise cli.UsageError("model.detector=faster_rcnn: its init_from is an ImageNet backbone "
                         "(no detector to score); train a run and use --workdir")
  if not config.model.init_from:
    raise cli.UsageError("--config without --workdir evaluates the weights of "
                         "--config.model.init_from (a darknet .weights file or a workdir)")
  if config.model.init_parts != "all":
    raise cli.UsageError(f"--config.model.init_parts={config.model.init_parts}: evaluating "
                         "needs the whole detector; use --config.model.init_parts=all")
  eval_ds = pipeline.build_dataset(config, "eval")
  num_classes = config.dataset.num_classes or len(eval_ds.class_names)
  train_ds = pipeline.build_dataset(config, "train") \
      if config.anchors.init in anchors_lib.DATA_INITS else None   # k-means needs its boxes
  model = yolov2.from_config(config, num_classes=num_classes,
                             anchors=train.initial_anchors(config, train_ds))
  params, batch_stats = train.init_params(model, image_size=config.input.image_size,
                                          seed=config.seed)
  start = pretrained.initialise(config, model, params, batch_stats,
                                class_names=eval_ds.class_names)
  result = runner.Evaluator(config, eval_ds, model=model).run(
      start.params, start.batch_stats, export_path=export_path)
  return {**result, "init_from": config.model.init_from, "loaded": start.report}


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  config = cli.config_value(fv)
  modes = [bool(fv.workdir), bool(fv.gt or fv.dets), config is not None]
  if sum(modes) != 1 or (modes[1] and not (fv.gt and fv.dets)):
    raise cli.UsageError("give one of --workdir=DIR, --config=FILE (with "
                         "--config.model.init_from), or both --gt=GT.json and --dets=DETS.json")
  if fv.workdir:
    result = evaluate_workdir(fv.workdir, export_path=fv.export)
  elif config is not None:
    result = evaluate_pretrained(config, export_path=fv.export)
  else:
    plus_one = {"auto": None, "voc": True, "continuous": False}[fv.pixel_convention]
    result = coco_files.evaluate_files(fv.gt, fv.dets, fv.metric, plus_one=plus_one)
  cli.report(fv, result, render)
  if fv.workdir and not fv.json:
    print(f"\nappended to {workdir_lib.path(fv.workdir, workdir_lib.EVAL)}"
          + (f"; detections written to {fv.export}" if fv.export else ""))
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (the arguments, default sys.argv[1:]); returns the exit
  status."""
  return cli.run(define_flags, main, argv, doc=__doc__)
