"""Training and evaluation of YOLOv2 with learnable anchors (the main job).

``train_and_evaluate(config, workdir)`` reads top to bottom: set-up, input,
model and anchors, optimiser and schedules, state (fresh or restored), the
pmapped ``train_step``, then the loop with logging, checkpoints and evals.
"""
from __future__ import annotations

import functools
import os
import signal
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from anchor_jax import config_lib
from anchor_jax import workdir as workdir_lib
from anchor_jax.analysis import plots
from anchor_jax.core import anchors as anchors_lib
from anchor_jax.core import losses
from anchor_jax.core.region import STRIDE
from anchor_jax.data import pipeline
from anchor_jax.errors import UserError
from anchor_jax.evaluation import runner
from anchor_jax.model import faster_rcnn, yolov2
from anchor_jax.training import checkpoint as ckpt_lib
from anchor_jax.training import logs, optim, parallel, pretrained, rcnn_step

TRAIN_KEYS = ("image", "boxes", "labels", "mask", "difficult")   # what the step reads


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


@flax.struct.dataclass
class Schedules:
  """Per-step hyper-parameters, all functions of the step (optax schedules)."""
  lr: Any = flax.struct.field(pytree_node=False)
  temperature: Any = flax.struct.field(pytree_node=False)
  cluster_weight: Any = flax.struct.field(pytree_node=False)


def make_lr_schedule(config):
  """``train.lr_shape``: the piecewise ``train.lr_schedule``, drops at fractions of the run,
  or a warm-up + cosine decay."""
  t = config.train
  burn_in = dict(burn_in_steps=t.burn_in_steps, burn_in_power=t.burn_in_power)
  if t.lr_shape == "step":
    return optim.step_lr_schedule(t.peak_lr, t.steps, t.lr_decay_at,
                                  decay_factor=t.lr_decay_factor, **burn_in)
  if t.lr_shape == "cosine":
    return optim.cosine_lr_schedule(t.peak_lr, t.steps, warmup_steps=t.warmup_steps,
                                    final_lr_frac=t.final_lr_frac, **burn_in)
  return optim.lr_schedule(t.lr_schedule, **burn_in)


def make_schedules(config) -> Schedules:
  a = config.anchors
  return Schedules(
      lr=make_lr_schedule(config),
      temperature=optim.warmup_schedule(a.temperature, a.soft_assign_steps),
      cluster_weight=optim.warmup_schedule(a.cluster_weight, a.cluster_steps))


def is_rcnn(config) -> bool:
  return config.model.get("detector", "yolov2") == "faster_rcnn"   # absent in older runs


def anchor_units(config) -> tuple[tuple[str, str], int]:
  """(param path of the anchors, input pixels per anchor unit): YOLOv2's anchors are in
  grid cells of its stride-32 output; Faster R-CNN's (one set per FPN level) in pixels."""
  if is_rcnn(config):
    return ("rpn", optim.ANCHOR_LEAF), 1
  return ("head", optim.ANCHOR_LEAF), STRIDE


def anchor_values(config, params) -> np.ndarray:
  """The anchors in ``params`` as [K, 2] (w, h) in anchor units (levels flattened)."""
  (module, leaf), _ = anchor_units(config)
  return np.exp(np.asarray(params[module][leaf], np.float64)).reshape(-1, 2)


def build_model(config, *, num_classes: int, anchors, axis_name: str | None = None):
  """The flax module of ``model.detector`` (``axis_name``: pmap axis of cross-device BN)."""
  if is_rcnn(config):
    return faster_rcnn.from_config(config, num_classes=num_classes, anchors=anchors,
                                   axis_name=axis_name)
  return yolov2.from_config(config, num_classes=num_classes, anchors=anchors,
                            axis_name=axis_name)


def initial_anchors(config, train_ds) -> np.ndarray:
  """YOLOv2: [A, 2] grid units from ``anchors.init`` (fitted to the training boxes for
  k-means, autoanchor and calc_anchors). Faster R-CNN: [L, A, 2] pixels from
  ``rcnn.anchor_sizes`` x ``rcnn.aspect_ratios``."""
  if is_rcnn(config):
    return np.asarray(faster_rcnn.default_anchors(config), np.float64)
  boxes_wh = None
  if config.anchors.init in anchors_lib.DATA_INITS:
    boxes_wh = pipeline.train_box_shapes(train_ds, config) / STRIDE
  return anchors_lib.init_anchors(config.anchors.init, config.anchors.num,
                                  boxes_wh=boxes_wh, seed=config.seed)


def loss_options(config) -> dict:
  loss = config.loss
  return dict(coord_scale=loss.coord_scale, object_scale=loss.object_scale,
              noobject_scale=loss.noobject_scale, class_scale=loss.class_scale,
              ignore_thresh=loss.ignore_thresh, rescore=loss.rescore,
              assign_metric=config.anchors.assign_metric)


def yolo_loss_fn(model, loss_kwargs: dict):
  """YOLOv2's loss of (params, batch_stats, batch) -> (loss, terms, batch_stats)."""
  def loss_fn(params, batch_stats, batch, *, step, temperature, cluster_weight, prior):
    del step
    images = batch["image"].astype(jnp.float32) / 255.0          # [b, S, S, 3]
    gt_mask = batch["mask"] & ~batch["difficult"]   # darknet trains on non-difficult GTs
    out, updates = model.apply({"params": params, "batch_stats": batch_stats},
                               images, train=True, mutable=["batch_stats"])
    total, terms = losses.yolo_loss(
        out, params["head"]["anchor_log_wh"], batch["boxes"], batch["labels"], gt_mask,
        temperature=temperature, cluster_weight=cluster_weight, prior_scale=prior,
        axis_name=parallel.AXIS, **loss_kwargs)
    return total, terms, updates["batch_stats"]
  return loss_fn


def rcnn_loss_fn(model, rcnn_config, *, seed: int):
  """Faster R-CNN's loss (``rcnn_step.rcnn_loss``) with a random key per (step, image)."""
  def loss_fn(params, batch_stats, batch, *, step, temperature, cluster_weight, prior):
    del temperature, prior   # no soft assignment, no darknet prior term (config_lib checks)
    local = batch["image"].shape[0]
    keys = rcnn_step.image_keys(
        jax.random.fold_in(jax.random.key(seed), step),
        first=jax.lax.axis_index(parallel.AXIS) * local, count=local)
    return rcnn_step.rcnn_loss(model, params, batch_stats, batch, keys=keys,
                               cluster_weight=cluster_weight, cfg=rcnn_config,
                               num_devices=jax.lax.psum(1, parallel.AXIS))
  return loss_fn


def train_step(state: TrainState, batch: dict, *, loss_fn, tx, schedules: Schedules,
               prior_scale: float, prior_steps: int):
  """One SGD step on this device's share of the global batch (run under pmap).

  ``loss_fn`` returns this device's share of the global loss (``yolo_loss(axis_name=)``,
  ``rcnn_loss(num_devices=)``), so gradients and logged terms are *summed* over devices.
  """
  step = state.step
  temperature = schedules.temperature(step)
  cluster_weight = schedules.cluster_weight(step)
  prior = jnp.where(step < prior_steps, prior_scale, 0.0)

  def objective(params):
    total, terms, batch_stats = loss_fn(params, state.batch_stats, batch, step=step,
                                        temperature=temperature,
                                        cluster_weight=cluster_weight, prior=prior)
    return total, (terms, batch_stats)

  (loss, (terms, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
      state.params)
  grads = jax.lax.psum(grads, parallel.AXIS)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = jax.lax.psum({"loss": loss, **terms}, parallel.AXIS)
  metrics.update(lr=schedules.lr(step), temperature=temperature, cluster_weight=cluster_weight,
                 grad_norm=optax.tree.norm(grads), param_norm=optax.tree.norm(params))
  new_state = state.replace(step=step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state)
  return new_state, metrics


def init_params(model, *, image_size: int, seed: int):
  """-> (params, batch_stats) initialised on the default device."""
  dummy = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  # An rbg key: threefry random draws compile very slowly on CPU (tens of seconds
  # for a small net); the init stays deterministic by seed.
  key = jax.random.key(seed, impl="rbg")
  variables = jax.jit(functools.partial(model.init, train=False))(key, dummy)
  return variables["params"], variables.get("batch_stats", {})


def create_state(config, model, schedules: Schedules):
  """-> (optimiser, fresh host-side TrainState) for ``config``."""
  params, batch_stats = init_params(model, image_size=config.input.image_size, seed=config.seed)
  # Faster R-CNN: frozen BN's scale/bias and the stages up to rcnn.freeze_at get no update.
  frozen = faster_rcnn.frozen_mask(model, params) if is_rcnn(config) else None
  tx = optim.make_optimizer(frozen=frozen,
      lr=schedules.lr, momentum=config.train.momentum, weight_decay=config.train.weight_decay,
      anchor_lr_mult=config.anchors.lr_mult, optimize_anchors=config.anchors.optimize,
      params=params, optimizer=config.train.optimizer, adam_b2=config.train.adam_b2,
      adam_eps=config.train.adam_eps)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=tx.init(params))
  return tx, jax.device_get(state)


def start_from_pretrained(config, model, tx, state: TrainState, class_names):
  """The fresh host ``state`` with ``model.init_from``'s params and BatchNorm statistics
  (``pretrained.initialise``); step 0 and a fresh optimiser state. -> (state, anchors)."""
  start = pretrained.initialise(config, model, state.params, state.batch_stats,
                                class_names=class_names)
  state = state.replace(params=start.params, batch_stats=start.batch_stats,
                        opt_state=tx.init(start.params))
  return jax.device_get(state), start.anchors


def make_train_step(config, model, tx, schedules: Schedules):
  """``train_step`` with everything but (state, batch) bound, ready for pmap."""
  if config.model.detector == "faster_rcnn":
    loss_fn = rcnn_loss_fn(model, config.rcnn, seed=config.seed)
  else:
    loss_fn = yolo_loss_fn(model, loss_options(config))
  return functools.partial(
      train_step, loss_fn=loss_fn, tx=tx, schedules=schedules,
      prior_scale=config.loss.prior_scale,
      prior_steps=config.loss.prior_images // config.train.batch_size)


class _StopFlag:
  """Set by SIGTERM or SIGINT (Ctrl-C): the loop saves a checkpoint and exits cleanly.
  ``signal_name`` says which; the previous handlers come back with ``restore()``."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.stop, self.signal_name, self._previous = False, None, {}
    try:
      self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
    except ValueError:   # not the main thread (e.g. in tests)
      pass

  def _handle(self, signum, frame):
    self.signal_name = signal.Signals(signum).name
    logging.warning("%s received: saving a checkpoint and stopping.", self.signal_name)
    self.stop = True

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class NonFiniteLossError(UserError, FloatingPointError):
  """The loss became NaN/inf; the message names the step and the last good checkpoint."""


def _first_nonfinite(history: list) -> int | None:
  for step, m in history:
    if not np.isfinite(m["loss"]):
      return step
  return None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from ``workdir`` if it holds checkpoints) and evaluates.

  Everything that can be checked before training is, before anything is written; process
  0 holds the workdir's lock for the whole run (one run per workdir). Returns a summary
  dict: initial/learned anchors, the last eval result, and whether a signal stopped it.
  """
  config_lib.validate(config)
  num_devices = jax.device_count()
  if config.train.batch_size % num_devices:
    raise config_lib.ConfigError(
        f"--config.train.batch_size={config.train.batch_size} must be divisible by the "
        f"{num_devices} devices (all processes); use a multiple of {num_devices}.")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise workdir_lib.WorkdirError(f"cannot create --workdir={workdir}: {e.strerror}") from None
  if jax.process_index() != 0:
    return _train(config, workdir)
  with workdir_lib.locked(workdir):
    return _train(config, workdir)


def _train(config, workdir: str) -> dict:
  """The run itself (see ``train_and_evaluate``)."""
  # ---------------------------------------------------------------- set-up
  process_index, process_count = jax.process_index(), jax.process_count()
  is_primary = process_index == 0
  global_batch = config.train.batch_size
  logging.info("process %d/%d, %d local / %d global devices (%s)", process_index,
               process_count, jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform)

  # ---------------------------------------------------------------- input
  train_ds = pipeline.build_dataset(config, "train")
  eval_ds = pipeline.build_dataset(config, "eval")
  num_classes = config.dataset.num_classes or len(train_ds.class_names)

  # ---------------------------------------------------------------- model and anchors
  init_anchors = initial_anchors(config, train_ds)
  _, anchor_stride = anchor_units(config)
  model = build_model(config, num_classes=num_classes, anchors=init_anchors,
                      axis_name=parallel.AXIS)
  schedules = make_schedules(config)
  evaluator = runner.Evaluator(config, eval_ds, model=build_model(   # checks the metric
      config, num_classes=num_classes, anchors=init_anchors))

  # ---------------------------------------------------------------- optimiser and state
  tx, state = create_state(config, model, schedules)
  checkpointer = ckpt_lib.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                       move_aside=is_primary)

  def restore(step):
    """Checks the metadata against the config before reading any array."""
    meta = checkpointer.read_meta(step)
    config_lib.check_resume(meta, config)
    saved_names = meta.get("class_names")
    if saved_names is not None and saved_names != list(train_ds.class_names):
      raise config_lib.ConfigError(
          f"The workdir's checkpoint was trained on classes {saved_names}, the data now "
          f"has {list(train_ds.class_names)}: class indices would change meaning. "
          "Use a new --workdir, or the same class list (dataset.class_names).")
    return step, *checkpointer.restore(step, state)

  start_step, latest = 0, None
  try:
    restored = checkpointer.newest_readable(restore)
    if restored is None and config.model.init_from:   # a resumed run continues its own
      state, init_anchors = start_from_pretrained(config, model, tx, state,
                                                  train_ds.class_names)
  except BaseException:
    checkpointer.close()   # orbax's background threads must not outlive a refused start
    raise
  if restored is not None:
    latest, state, meta = restored
    start_step = int(meta["data_position"])
    logging.info("Resumed from %s at step %d.", checkpointer.directory, start_step)
  if is_primary:   # only once the checkpoint, if any, is known to fit this config
    workdir_lib.write_config(workdir, config)
  state = parallel.replicate(state)

  # ---------------------------------------------------------------- update step
  p_train_step = jax.pmap(make_train_step(config, model, tx, schedules),
                          axis_name=parallel.AXIS, donate_argnums=(0,))

  # ---------------------------------------------------------------- loop
  logger = logs.RunLogger(workdir, is_primary=is_primary, total_steps=config.train.steps,
                          start_step=start_step, images_per_step=global_batch)
  stop = _StopFlag()
  stream = pipeline.train_stream(train_ds, config, start_step=start_step,
                                       process_index=process_index, process_count=process_count)
  history, unlogged, last_saved, eval_result = [], [], latest, None

  host_copy = [None, None]   # (replicated state, its host copy): one copy per state

  def host_state():
    """The current state on the host; copied once even when a step both saves and
    evaluates, or at the end (save, final eval, learned anchors)."""
    if host_copy[0] is not state:
      host_copy[:] = [state, parallel.unreplicate(state)]
    return host_copy[1]

  def save(step):
    nonlocal last_saved
    checkpointer.save(step, host_state(), {"data_position": step,
                                           "config_hash": config_lib.fingerprint(config),
                                           "config": config_lib.to_dict(config),
                                           "class_names": list(train_ds.class_names)})
    last_saved = step

  def check_history():
    """Moves the metrics of finished steps to the host (each step once) and raises on a
    non-finite loss, before any checkpoint of that state could be written."""
    nonlocal history
    fetched = [(s, parallel.unreplicate(m)) for s, m in history]
    history = []
    unlogged.extend(fetched)
    bad = _first_nonfinite(fetched)
    if bad is not None:
      raise NonFiniteLossError(
          f"Loss became NaN/inf at step {bad}. The last good checkpoint is step "
          f"{last_saved} in {checkpointer.directory} (kept; the bad state was not saved). "
          "Lower train.lr_schedule, check the data for broken boxes, or resume to retry.")

  step = start_step
  if start_step == 0 and is_primary:
    flat = np.reshape(init_anchors, (-1, 2))
    logger.anchors(0, flat, stride=anchor_stride, counts=np.zeros(len(flat)))
  try:
    for step, batch in stream:
      if step >= config.train.steps or stop.stop:
        break
      batch = {k: batch[k] for k in TRAIN_KEYS}
      state, metrics = p_train_step(state, parallel.shard(batch))
      history.append((step + 1, metrics))
      done = step + 1
      if done % config.train.log_every == 0 or done == config.train.steps:
        check_history()
        fetched, unlogged = unlogged, []
        means = {k: np.mean([m[k] for _, m in fetched], axis=0) for k in fetched[-1][1]}
        counts = np.sum([m["anchor_counts"] for _, m in fetched], axis=0)
        last = fetched[-1][1]
        scalars = {k: v for k, v in means.items() if np.ndim(v) == 0}
        scalars.update(lr=last["lr"], temperature=last["temperature"],
                       cluster_weight=last["cluster_weight"],
                       **{f"data/{k}": v for k, v in train_ds.stats.items()})
        logger.scalars(done, scalars)
        anchors_now = anchor_values(config, parallel.unreplicate(state.params))
        logger.anchors(done, anchors_now, stride=anchor_stride, counts=counts)
      if done % config.train.checkpoint_every == 0 and done != config.train.steps:
        check_history()
        save(done)
      if config.eval.every_steps and done % config.eval.every_steps == 0 \
          and done != config.train.steps:
        eval_result = _evaluate(evaluator, host_state, done, workdir, is_primary)
    step = int(parallel.unreplicate(state.step))
    check_history()
    if step != last_saved:
      save(step)
    if step >= config.train.steps and not stop.stop:
      eval_result = _evaluate(evaluator, host_state, step, workdir, is_primary)
  finally:
    stop.restore()
    logger.close()
    checkpointer.close()

  learned = anchor_values(config, host_state().params)
  init_anchors = np.reshape(init_anchors, (-1, 2))
  # train_s: the loop's wall time this session (compile and evals included).
  train_s, steps_run = time.time() - logger.t0, step - logger.start_step
  summary = {"step": step, "total_steps": config.train.steps, "initial_anchors": init_anchors,
             "learned_anchors": learned, "initial_anchors_px": init_anchors * anchor_stride,
             "learned_anchors_px": learned * anchor_stride, "eval": eval_result,
             "stopped_early": stop.stop, "signal": stop.signal_name, "plot": None,
             "checkpoint": os.path.join(checkpointer.directory, str(step)),
             "steps_run": steps_run, "train_s": train_s,
             "images_per_sec": steps_run * global_batch / train_s if steps_run else None}
  if is_primary and config.eval.plot and not stop.stop:
    summary["plot"] = anchor_plot(config, train_ds, init_anchors, learned, workdir, step=step)
  return summary


def anchor_plot(config, train_ds, init_anchors, learned, workdir, *, step: int) -> str:
  """anchors.png: the training boxes in (w, h) px on log axes with initial, k-means and
  learned anchors (paper Figure 2), titled with dataset, input size and step."""
  boxes_px = pipeline.train_box_shapes(train_ds, config)
  _, stride = anchor_units(config)
  kmeans_px = anchors_lib.kmeans_iou(boxes_px, len(learned), seed=config.seed)
  init_name = "rcnn.anchor_sizes x aspect_ratios" if is_rcnn(config) else config.anchors.init
  sets = {f"initial ({init_name})": init_anchors * stride,
          "k-means (1 - IoU)": kmeans_px, f"learned (step {step})": learned * stride}
  return plots.anchor_figure(
      boxes_px, sets, workdir_lib.path(workdir, workdir_lib.ANCHORS_PNG),
      title=plots.run_title(config, f"{len(boxes_px)} GT boxes and anchors",
                            steps=f"step {step}"))


def _evaluate(evaluator, host_state, step, workdir, is_primary):
  """Evaluates on the primary process; ``host_state`` is called only there."""
  if not is_primary:
    return None
  state = host_state()
  result = evaluator.run(state.params, state.batch_stats)
  workdir_lib.append_eval(workdir, step, "eval", result)
  logging.info("eval at step %d: AP50 %.4f", step, result["AP50"])
  return result
