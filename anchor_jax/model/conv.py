"""A ``conv_general_dilated`` for flax's ``nn.Conv`` whose kernel gradient is a matmul on CPU.

XLA:CPU computes the kernel gradient of a convolution as another convolution, whose window
is the whole output map (the input's "batch" is the channels). That runs several times
slower than the forward pass at the same shape (3-10x at DarkNet-19's shapes; run
``experiments/benchmarks/profile_step.py --per_layer``), and it was the largest part of
the CPU train step. For a stride-1 'SAME' conv with an odd k x k kernel the kernel
gradient is

  dW[dy, dx, c, o] = sum over (b, h, w) of x_pad[b, h + dy, w + dx, c] * g[b, h, w, o],

matrix products over the B H W pixels (``kernel_grad``: one per kernel row, or one for a
1 x 1 kernel), which XLA:CPU runs at its GEMM speed. ``conv_general_dilated`` computes
that on CPU where it is faster (``uses_matmul``: 1 x 1 kernels, >= 32 input channels;
``jax.lax.platform_dependent``: XLA's own gradient on other platforms, where the library
convolutions are fast) and keeps XLA's forward pass and input gradient everywhere: the same values, the kernel gradient summed in another order (float32
round-off, relative differences ~1e-6). Convolutions of any other form (strides,
dilation, groups, other layouts or paddings) are ``lax.conv_general_dilated`` unchanged.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                 out_spec=(0, 3, 1, 2))


def _plain_conv(x, w, precision=None):
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_NHWC,
                                  precision=precision)


def kernel_grad(x, g, kernel_size: int):
  """The kernel gradient [k, k, C, O] of a stride-1 'SAME' conv of x [B, H, W, C] whose
  output has cotangent g [B, H, W, O], as matrix products over the pixels (float32
  accumulation)."""
  b, h, w, c = x.shape
  g2 = g.reshape(b * h * w, g.shape[-1])
  dot = lambda a: lax.dot_general(a, g2, (((0,), (0,)), ((), ())),
                                  preferred_element_type=jnp.float32)   # a^T g: [., O]
  k = kernel_size
  if k == 1:
    return dot(x.reshape(b * h * w, c)).reshape(1, 1, c, -1).astype(x.dtype)
  p = k // 2
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  rows = []
  for dy in range(k):   # the k shifted copies of one kernel row side by side: [BHW, k C]
    row = jnp.concatenate([xp[:, dy:dy + h, dx:dx + w, :] for dx in range(k)], axis=-1)
    rows.append(dot(row.reshape(b * h * w, k * c)))
  return jnp.stack(rows).reshape(k, k, c, -1).astype(x.dtype)


MIN_MATMUL_CHANNELS = 32


def uses_matmul(kernel_shape) -> bool:
  """Whether the CPU kernel gradient of a [k, k, C, O] kernel is ``kernel_grad``: 1 x 1
  kernels, and k x k ones with C >= 32 input channels. With fewer, the k x k shifted
  copies cost more memory traffic than the products save: XLA's own gradient was faster
  at C = 3, 8, 16 (e.g. 55 vs 72 ms at [16, 64, 64, 16] -> 32), ``kernel_grad`` from
  C = 32 on (15 vs 40 ms at [16, 32, 32, 32] -> 64; 1.4 vs 3.3 s at [8, 208, 208, 32] -> 64)."""
  k, _, c, _ = kernel_shape
  return k == 1 or c >= MIN_MATMUL_CHANNELS


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_same(x, w, precision=None):
  """Stride-1 'SAME' conv, NHWC x HWIO -> NHWC, with ``kernel_grad`` as the kernel
  gradient on CPU (see the module docstring)."""
  return _plain_conv(x, w, precision)


def _conv_same_fwd(x, w, precision):
  return _plain_conv(x, w, precision), (x, w)


def _conv_same_bwd(precision, residuals, g):
  x, w = residuals
  dx, = jax.vjp(lambda x_: _plain_conv(x_, w, precision), x)[1](g)

  def xla_dw(x_, g_):
    return jax.vjp(lambda w_: _plain_conv(x_, w_, precision), w)[1](g_)[0]
  if not uses_matmul(w.shape):
    return dx, xla_dw(x, g).astype(w.dtype)
  # The matmuls on CPU, XLA's kernel gradient elsewhere; only one is compiled.
  dw = lax.platform_dependent(x, g, cpu=lambda x_, g_: kernel_grad(x_, g_, w.shape[0]),
                              default=xla_dw)
  return dx, dw.astype(w.dtype)


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


def _is_same_stride1(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                     dimension_numbers, feature_group_count, batch_group_count) -> bool:
  if lhs.ndim != 4 or tuple(window_strides) != (1, 1):
    return False
  if any(d is not None and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation)):
    return False
  if feature_group_count != 1 or batch_group_count != 1:
    return False
  if lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != _NHWC:
    return False
  k = rhs.shape[0]
  if rhs.shape[1] != k or k % 2 == 0:
    return False
  return padding == "SAME" or tuple(map(tuple, padding)) == ((k // 2, k // 2),) * 2


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None, preferred_element_type=None):
  """``lax.conv_general_dilated``, with ``conv_same`` for the stride-1 'SAME' NHWC convs
  (pass it as ``nn.Conv(conv_general_dilated=...)``)."""
  if preferred_element_type is None and _is_same_stride1(
      lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
      feature_group_count, batch_group_count):
    return conv_same(lhs, rhs, precision)
  return lax.conv_general_dilated(
      lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
