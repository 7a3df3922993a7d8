"""Tests for anchor_jax.model.conv: XLA's conv values, its gradients up to round-off."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anchor_jax.model import conv


def _xla(x, w, strides=(1, 1), padding="SAME"):
  return jax.lax.conv_general_dilated(x, w, strides, padding,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("k,c", [(1, 5), (3, 5), (3, 32), (5, 32)])
def test_conv_same_matches_xla_values_and_gradients(k, c):
  assert conv.uses_matmul((k, k, c, 6)) == (k == 1 or c >= conv.MIN_MATMUL_CHANNELS)
  rng = np.random.default_rng(k)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, c)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, c, 6)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(2, 9, 7, 6)), jnp.float32)
  np.testing.assert_array_equal(conv.conv_same(x, w), _xla(x, w))
  ours = jax.vjp(conv.conv_same, x, w)[1](g)
  ref = jax.vjp(_xla, x, w)[1](g)
  np.testing.assert_array_equal(ours[0], ref[0])     # XLA's own input gradient
  np.testing.assert_allclose(ours[1], ref[1], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(conv.kernel_grad(x, g, k), ref[1], rtol=1e-5, atol=1e-4)


def test_other_convs_are_lax_unchanged():
  x = jnp.ones((1, 8, 8, 3))
  w = jnp.ones((3, 3, 3, 4))
  dn = ("NHWC", "HWIO", "NHWC")
  for kwargs in (dict(window_strides=(2, 2), padding="SAME"),
                 dict(window_strides=(1, 1), padding="VALID"),
                 dict(window_strides=(1, 1), padding="SAME", rhs_dilation=(2, 2))):
    jaxpr = jax.make_jaxpr(lambda x, w, kw=kwargs: conv.conv_general_dilated(
        x, w, dimension_numbers=dn, **kw))(x, w)
    assert "custom_vjp" not in str(jaxpr)
    np.testing.assert_array_equal(
        conv.conv_general_dilated(x, w, dimension_numbers=dn, **kwargs),
        jax.lax.conv_general_dilated(x, w, dimension_numbers=dn, **kwargs))


def test_flax_conv_uses_it_with_the_same_params():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
  plain = nn.Conv(4, (3, 3), padding="SAME", use_bias=False)
  ours = nn.Conv(4, (3, 3), padding="SAME", use_bias=False,
                 conv_general_dilated=conv.conv_general_dilated)
  params = plain.init(jax.random.key(0), x)
  assert "custom_vjp" in str(jax.make_jaxpr(lambda p: ours.apply(p, x))(params))
  np.testing.assert_array_equal(ours.apply(params, x), plain.apply(params, x))
  loss = lambda m: jax.grad(lambda p: jnp.sum(m.apply(p, x) ** 2))(params)
  np.testing.assert_allclose(loss(ours)["params"]["kernel"], loss(plain)["params"]["kernel"],
                             rtol=1e-5, atol=1e-4)
