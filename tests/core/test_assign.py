"""Target assignment against a plain-loop reference and the paper's limits."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.core import assign as assign_lib
from tests import reference

ANCHORS = np.asarray([[0.6, 0.7], [1.9, 2.1], [3.3, 5.5], [7.9, 3.5], [9.8, 9.2]], np.float32)


def _dense(ref_assignment, cells_shape, grid_w):
  """Reference dict -> (delta [B, M, A], cell [B, M]) arrays."""
  batch, num_gt = cells_shape
  delta = np.zeros((batch, num_gt, len(ANCHORS)))
  cell = np.zeros((batch, num_gt), np.int64)
  for b, per_gt in enumerate(ref_assignment):
    for j, (row, col, weights) in per_gt.items():
      delta[b, j] = weights
      cell[b, j] = row * grid_w + col
  return delta, cell


@pytest.fixture(scope="module")
def run_assign():
  return jax.jit(assign_lib.assign, static_argnames=("grid_hw", "metric"))


def test_gt_geometry_hand_example():
  boxes = jnp.asarray([[[0.1, 0.2, 0.3, 0.6]]])
  cell, target_xy, log_wh = assign_lib.gt_geometry(boxes, grid_hw=(13, 13))
  # centre (0.2, 0.4) * 13 = (2.6, 5.2): column 2, row 5.
  assert int(cell[0, 0]) == 5 * 13 + 2
  np.testing.assert_allclose(target_xy[0, 0], [0.6, 0.2], atol=1e-5)
  np.testing.assert_allclose(np.exp(log_wh[0, 0]), [0.2 * 13, 0.4 * 13], rtol=1e-5)


@pytest.mark.parametrize("metric", ["iou", "l2"])
def test_hard_assignment_equals_loop_reference(run_assign, metric):
  rng = np.random.default_rng(0)
  checked_collisions = 0
  for trial in range(120):
    grid = int(rng.choice([3, 5, 13]))
    boxes, _, mask = reference.random_batch(
        rng, batch=4, max_boxes=12, grid=grid, num_classes=3, collide=trial % 2 == 0)
    a = run_assign(jnp.asarray(boxes), jnp.asarray(mask), jnp.log(ANCHORS),
                   grid_hw=(grid, grid), temperature=0.0, metric=metric)
    ref = reference.assign(boxes, mask, ANCHORS, grid, grid, 0.0, metric)
    ref_delta, ref_cell = _dense(ref, mask.shape, grid)
    np.testing.assert_array_equal(np.asarray(a.delta), ref_delta)
    np.testing.assert_array_equal(np.asarray(a.cell)[ref_delta.sum(-1) > 0],
                                  ref_cell[ref_delta.sum(-1) > 0])
    checked_collisions += int(mask.sum() - ref_delta.sum())
    # responsible = scatter of delta onto the prediction grid
    resp = np.zeros((4, grid * grid * len(ANCHORS)))
    for b, j in zip(*np.nonzero(ref_delta.sum(-1))):
      resp[b, ref_cell[b, j] * len(ANCHORS) + ref_delta[b, j].argmax()] += 1
    np.testing.assert_array_equal(np.asarray(a.responsible), np.minimum(resp, 1))
  assert checked_collisions > 50, "the random cases should contain collisions"


def test_collision_rule_last_slot_wins(run_assign):
  box = [0.4, 0.4, 0.6, 0.6]
  boxes = jnp.asarray([[box, box, [0.0, 0.0, 0.1, 0.1], box]], jnp.float32)
  mask = jnp.asarray([[True, True, True, False]])   # slot 3 is padding: it cannot win
  a = run_assign(boxes, mask, jnp.log(ANCHORS), grid_hw=(5, 5), temperature=0.0)
  owners = np.asarray(a.delta).sum(-1)[0]
  np.testing.assert_array_equal(owners, [0, 1, 1, 0])


def test_soft_assignment_limits(run_assign):
  rng = np.random.default_rng(1)
  boxes, _, mask = reference.random_batch(rng, batch=8, max_boxes=10, grid=13,
                                          num_classes=2, empty_prob=0.3)
  args = (jnp.asarray(boxes), jnp.asarray(mask), jnp.log(ANCHORS))
  kw = dict(grid_hw=(13, 13))
  soft = np.asarray(run_assign(*args, temperature=0.7, **kw).delta)
  np.testing.assert_allclose(soft.sum(-1), mask.astype(float), atol=1e-6)
  assert np.all(soft[mask] > 0)
  # T -> 0: one-hot on the best-IoU anchor (before collision resolution).
  cold = np.asarray(run_assign(*args, temperature=1e-4, **kw).delta)
  ref = reference.assign(boxes, mask, ANCHORS, 13, 13, 1e-4)
  ref_delta, _ = _dense(ref, mask.shape, 13)
  np.testing.assert_allclose(cold, ref_delta, atol=1e-5)
  best = np.argmax(cold, -1)[mask]
  np.testing.assert_allclose(cold[mask][np.arange(best.size), best], 1.0, atol=1e-4)
  # T -> infinity: uniform over the A anchors.
  hot = np.asarray(run_assign(*args, temperature=1e5, **kw).delta)
  np.testing.assert_allclose(hot[mask], 1 / len(ANCHORS), atol=1e-4)


@pytest.mark.parametrize("metric", ["iou", "l2"])
def test_soft_assignment_equals_reference(run_assign, metric):
  rng = np.random.default_rng(2)
  boxes, _, mask = reference.random_batch(rng, batch=4, max_boxes=8, grid=7, num_classes=2)
  a = run_assign(jnp.asarray(boxes), jnp.asarray(mask), jnp.log(ANCHORS),
                 grid_hw=(7, 7), temperature=0.5, metric=metric)
  ref_delta, _ = _dense(reference.assign(boxes, mask, ANCHORS, 7, 7, 0.5, metric), mask.shape, 7)
  np.testing.assert_allclose(np.asarray(a.delta), ref_delta, atol=1e-5)


def test_assignment_is_stop_gradient():
  boxes = jnp.asarray([[[0.3, 0.3, 0.5, 0.6]]])
  mask = jnp.asarray([[True]])
  def f(log_anchors):
    a = assign_lib.assign(boxes, mask, log_anchors, grid_hw=(5, 5), temperature=1.0)
    return jnp.sum(a.delta * jnp.arange(5.0)) + jnp.sum(a.gt_log_wh)
  np.testing.assert_array_equal(jax.jit(jax.grad(f))(jnp.log(ANCHORS)), 0.0)


def test_ignore_mask_against_reference():
  rng = np.random.default_rng(3)
  gt, _, mask = reference.random_batch(rng, batch=3, max_boxes=6, grid=5, num_classes=2,
                                       empty_prob=0.0)
  centre = rng.uniform(0, 1, (3, 40, 2))
  wh = rng.uniform(0.05, 0.6, (3, 40, 2))
  pred = np.concatenate([centre - wh / 2, centre + wh / 2], -1).astype(np.float32)
  pred[:, :6] = gt + rng.normal(0, 0.01, gt.shape)   # some predictions sit on GTs
  got = np.asarray(assign_lib.ignore_mask(jnp.asarray(pred), jnp.asarray(gt),
                                          jnp.asarray(mask), thresh=0.6))
  want = np.asarray([[max([reference.iou(p, g) for g, m in zip(gt[b], mask[b]) if m],
                          default=0) > 0.6 for p in pred[b]] for b in range(3)])
  np.testing.assert_array_equal(got, want)
  assert want.any() and not want.all()
