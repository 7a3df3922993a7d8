"""Schedules and the optimiser's parameter groups, incl. how Baseline freezes anchors."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from anchor_jax.core import losses
from anchor_jax.training import optim

PAPER_VOC = [(0, 1e-4), (100, 1e-3), (15000, 1e-4), (27000, 1e-5)]


def test_lr_schedule_piecewise_with_burn_in():
  s = optim.lr_schedule(PAPER_VOC, burn_in_steps=1000, burn_in_power=4)
  for step, want in [(0, 0.0), (50, 1e-4 * 0.05 ** 4), (500, 1e-3 * 0.5 ** 4),
                     (1000, 1e-3), (14999, 1e-3), (15000, 1e-4), (26999, 1e-4),
                     (27000, 1e-5), (29999, 1e-5)]:
    np.testing.assert_allclose(float(s(step)), want, rtol=1e-5, atol=1e-12)
  flat = optim.lr_schedule(PAPER_VOC, burn_in_steps=0)
  assert float(flat(99)) == pytest.approx(1e-4) and float(flat(100)) == pytest.approx(1e-3)
  with pytest.raises(ValueError, match="start at step 0"):
    optim.lr_schedule([(10, 1e-3)])


def test_warmup_schedules():
  t = optim.warmup_schedule(2.0, 1500)
  np.testing.assert_allclose([float(t(s)) for s in (0, 750, 1500, 5000)], [2, 1, 0, 0], atol=1e-6)
  lam = optim.warmup_schedule(1.0, 1500)
  np.testing.assert_allclose(float(lam(300)), 0.8, rtol=1e-6)
  assert float(optim.warmup_schedule(2.0, 0)(0)) == 0.0


def _toy_params():
  rng = np.random.default_rng(0)
  return {
      "conv": {"kernel": jnp.asarray(rng.normal(size=(4, 5 * 7)), jnp.float32),
               "bias": jnp.zeros(5 * 7)},
      "head": {"anchor_log_wh": jnp.log(jnp.asarray(
          [[0.6, 0.7], [1.9, 2.1], [3.3, 5.5], [7.9, 3.5], [9.8, 9.2]]))},
  }


def _toy_loss(params, feats, boxes, labels, mask):
  out = (feats @ params["conv"]["kernel"] + params["conv"]["bias"]).reshape(2, 3, 3, 5, 7)
  return losses.yolo_loss(out, params["head"]["anchor_log_wh"], boxes, labels, mask,
                          temperature=0.5, cluster_weight=1.0)[0]


def _toy_batch():
  rng = np.random.default_rng(1)
  feats = jnp.asarray(rng.normal(size=(2, 3, 3, 4)), jnp.float32)
  boxes = jnp.asarray([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.2, 0.9, 0.9]]] * 2, jnp.float32)
  return feats, boxes, jnp.zeros((2, 2), jnp.int32), jnp.ones((2, 2), bool)


def test_param_labels():
  labels = optim.param_labels(_toy_params(), optimize_anchors=True)
  assert labels == {"conv": {"kernel": "decay", "bias": "no_decay"},
                    "head": {"anchor_log_wh": "anchors"}}
  assert optim.param_labels(_toy_params(), optimize_anchors=False)["head"]["anchor_log_wh"] == "frozen"


@pytest.mark.parametrize("optimize", [True, False])
def test_baseline_freezes_anchors_bit_for_bit(optimize):
  params = _toy_params()
  batch = _toy_batch()
  tx = optim.make_optimizer(lr=optax.constant_schedule(0.01), momentum=0.9, weight_decay=5e-4,
                            anchor_lr_mult=2.0, optimize_anchors=optimize, params=params)
  state = tx.init(params)
  grad_fn = jax.jit(jax.grad(_toy_loss))
  g = grad_fn(params, *batch)
  assert np.abs(np.asarray(g["head"]["anchor_log_wh"])).sum() > 0   # same graph: gradient exists
  updates, state = tx.update(g, state, params)
  new = optax.apply_updates(params, updates)
  anchors0 = np.asarray(params["head"]["anchor_log_wh"])
  if optimize:   # first SGD step: -lr * mult * grad (momentum buffer starts at 0)
    np.testing.assert_allclose(np.asarray(new["head"]["anchor_log_wh"]),
                               anchors0 - 0.02 * np.asarray(g["head"]["anchor_log_wh"]), rtol=1e-6)
  else:
    for _ in range(3):
      g = grad_fn(new, *batch)
      updates, state = tx.update(g, state, new)
      new = optax.apply_updates(new, updates)
    assert np.asarray(new["head"]["anchor_log_wh"]).tobytes() == anchors0.tobytes()
  # kernels: lr * (grad + wd * kernel); biases: no decay.
  g0 = grad_fn(params, *batch)
  k0 = np.asarray(params["conv"]["kernel"])
  if optimize:
    np.testing.assert_allclose(np.asarray(new["conv"]["kernel"]),
                               k0 - 0.01 * (np.asarray(g0["conv"]["kernel"]) + 5e-4 * k0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(new["conv"]["bias"]),
                               -0.01 * np.asarray(g0["conv"]["bias"]), rtol=1e-5, atol=1e-9)
  assert not np.allclose(np.asarray(new["conv"]["kernel"]), k0)


def test_cosine_schedule_by_hand():
  s = optim.cosine_lr_schedule(1e-2, 1000, warmup_steps=100, final_lr_frac=0.01)
  # Linear 0 -> 1e-2 over 100 steps, then 1e-4 + (1e-2 - 1e-4)(1 + cos(pi t)) / 2 with
  # t = (step - 100) / 900, constant after the last step.
  for step in (0, 50, 100, 400, 550, 1000, 2000):
    if step < 100:
      want = 1e-2 * step / 100
    else:
      t = min(step - 100, 900) / 900
      want = 1e-4 + (1e-2 - 1e-4) * (1 + np.cos(np.pi * t)) / 2
    np.testing.assert_allclose(float(s(step)), want, rtol=1e-5, atol=1e-12, err_msg=step)
  burned = optim.cosine_lr_schedule(1e-2, 1000, burn_in_steps=200, burn_in_power=2)
  # No warm-up: cosine from step 0, times the burn-in factor (100 / 200) ** 2 = 0.25.
  np.testing.assert_allclose(float(burned(100)), 1e-2 * (1 + np.cos(np.pi * 0.1)) / 2 * 0.25,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="warmup_steps"):
    optim.cosine_lr_schedule(1e-2, 100, warmup_steps=100)


def test_step_schedule_by_hand():
  """Drops at 75 % and 95 % of 1200 steps: 1e-2 before 900, 1e-3 in [900, 1140), 1e-4 after;
  the same fractions over 3000 steps move the drops to 2250 and 2850."""
  s = optim.step_lr_schedule(1e-2, 1200, (0.75, 0.95), decay_factor=0.1)
  for step, want in ((0, 1e-2), (899, 1e-2), (900, 1e-3), (1139, 1e-3), (1140, 1e-4),
                     (5000, 1e-4)):
    np.testing.assert_allclose(float(s(step)), want, rtol=1e-6, err_msg=step)
  long = optim.step_lr_schedule(1e-2, 3000, (0.75, 0.95), decay_factor=0.5)
  for step, want in ((2249, 1e-2), (2250, 5e-3), (2849, 5e-3), (2850, 2.5e-3)):
    np.testing.assert_allclose(float(long(step)), want, rtol=1e-6, err_msg=step)
  burned = optim.step_lr_schedule(1e-2, 1200, (0.75,), burn_in_steps=200, burn_in_power=2)
  np.testing.assert_allclose(float(burned(100)), 1e-2 * 0.25, rtol=1e-6)
  np.testing.assert_allclose(float(optim.step_lr_schedule(1e-2, 100, ())(99)), 1e-2)
  for bad in ((0.95, 0.75), (0.0, 0.5), (0.5, 1.0)):
    with pytest.raises(ValueError, match="lr_decay_at"):
      optim.step_lr_schedule(1e-2, 100, bad)


@pytest.mark.parametrize("optimize", [True, False])
def test_adamw_groups_first_step(optimize):
  """First Adam step moves every entry by lr * g / (|g| + eps') = ~lr * sign(g); kernels
  also shrink by lr * wd (decoupled); anchors use lr * mult, or stay bit-equal frozen."""
  params = _toy_params()
  batch = _toy_batch()
  lr, wd, mult = 1e-3, 0.1, 3.0
  tx = optim.make_optimizer(lr=optax.constant_schedule(lr), momentum=0.9, weight_decay=wd,
                            anchor_lr_mult=mult, optimize_anchors=optimize, params=params,
                            optimizer="adamw")
  g = jax.grad(_toy_loss)(params, *batch)
  updates, _ = tx.update(g, tx.init(params), params)
  step = lambda gg, rate: -rate * gg / (np.abs(gg) + 1e-8)        # bias-corrected 1st step
  gk, k0 = np.asarray(g["conv"]["kernel"]), np.asarray(params["conv"]["kernel"])
  np.testing.assert_allclose(np.asarray(updates["conv"]["kernel"]), step(gk, lr) - lr * wd * k0,
                             rtol=1e-4, atol=1e-9)
  np.testing.assert_allclose(np.asarray(updates["conv"]["bias"]),
                             step(np.asarray(g["conv"]["bias"]), lr), rtol=1e-4, atol=1e-9)
  ga = np.asarray(g["head"]["anchor_log_wh"])
  want = step(ga, lr * mult) if optimize else np.zeros_like(ga)
  np.testing.assert_allclose(np.asarray(updates["head"]["anchor_log_wh"]), want, rtol=1e-4,
                             atol=0 if not optimize else 1e-9)
  with pytest.raises(ValueError, match="train.optimizer"):
    optim.make_optimizer(lr=optax.constant_schedule(lr), momentum=0.9, weight_decay=wd,
                         anchor_lr_mult=mult, optimize_anchors=optimize, params=params,
                         optimizer="lamb")
