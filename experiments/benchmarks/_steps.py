"""The trainer's pmapped train step, built as ``anchor_jax.training.train`` builds it, for
the scripts that time it (one fixed batch, no input pipeline, no checkpoints, no eval)."""
import jax
import numpy as np

from anchor_jax.data import pipeline
from anchor_jax.training import parallel, train


def train_step_parts(config, batch_size: int | None = None):
  """-> (unmapped step fn, host state, host batch, model) of ``config``.

  ``batch_size`` overrides ``config.train.batch_size`` (global images per step). The batch
  is the split's first images, keys ``train.TRAIN_KEYS`` only, with a leading device axis
  (``parallel.shard``); the step runs under a mapping with axis ``parallel.AXIS``.
  """
  if batch_size is not None:
    config.train.batch_size = batch_size
  ds = pipeline.build_dataset(config, "train")
  num_classes = config.dataset.num_classes or len(ds.class_names)
  model = train.build_model(config, num_classes=num_classes,   # YOLOv2 or Faster R-CNN
                            anchors=train.initial_anchors(config, ds), axis_name=parallel.AXIS)
  schedules = train.make_schedules(config)
  tx, state = train.create_state(config, model, schedules)
  images = ds.batch(np.arange(config.train.batch_size))
  batch = parallel.shard({k: v for k, v in images.items() if k in train.TRAIN_KEYS})
  return train.make_train_step(config, model, tx, schedules), state, batch, model


def pmapped_train_step(config, batch_size: int | None = None):
  """-> (step fn, replicated state, sharded batch, model) of ``config``.

  ``batch_size`` as ``train_step_parts``. The step donates its state: feed each call the
  state the previous one returned.
  """
  step, state, batch, model = train_step_parts(config, batch_size)
  step = jax.pmap(step, axis_name=parallel.AXIS, donate_argnums=(0,))
  return step, parallel.replicate(state), batch, model
