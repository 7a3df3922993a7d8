"""Where the CPU train step's time goes, component by component, against PyTorch in one run.

  pip install torch==2.13.0      # optional, benchmark-only (not in requirements.txt)
  python experiments/benchmarks/profile_step.py                   # row 1: w0.25, 256 px, batch 16
  python experiments/benchmarks/profile_step.py --row=2           # row 2: DarkNet-19 w1.0, 416 px, batch 8
  python experiments/benchmarks/profile_step.py --per_layer       # + every conv shape: fwd, dx, dw
  python experiments/benchmarks/profile_step.py --xla_flags=--xla_cpu_use_onednn=true

Every component is a jitted function of fixed inputs, timed in alternation with the others
(one call of each per round, ``--repeats`` rounds, medians), so the machine's load hits all
alike:

* step (pmap): the trainer's pmapped ``train_step`` on one device (``_steps``);
* step (jit + shard_map): the same step under ``jax.jit`` of a one-device ``shard_map``;
* forward (train=True), and net fwd+bwd with a trivial loss (the network alone);
* net fwd+bwd, BN -> identity: the same with every BatchNorm intercepted (BN's share);
* YOLO loss fwd+bwd: assignment + loss on the step's output, gradient to outputs and anchors;
* conv chain: every conv of the network (same shapes, ``lax.conv_general_dilated``, NHWC and
  NCHW), forward and forward + backward (input and kernel gradients, none for the image);
* PyTorch (if importable; channels-last, ``--threads`` threads): the same conv chain, and
  ``bench_vs_torch``'s eager SGD step of the same layers.

The table gives ms, the share of the pmapped step and, where PyTorch ran the same work,
PyTorch ms / ours (> 1: ours is faster; for the step, our images/s over PyTorch's).
XLA flags: ``--xla_flags`` sets ``XLA_FLAGS`` before the backend starts.

Findings (jax 0.10.2, 2 shared AMD EPYC cores, AVX2, every run under other engineers' load,
load average 2.6-4.9; ``--repeats`` rounds in one run):

* The largest cost was XLA:CPU's kernel gradient of the convs (``--per_layer``, row 1: sum of
  fwd 314, dx 287, dw 459 ms; at 416 px dw took 2-7 s for one 3 x 3 conv at 104-208 px, 5-20x
  its forward). ``model.conv_grad=matmul`` (``anchor_jax/model/conv.py``, now the default)
  computes it as matmuls: row 2 step 30.6 -> 17.7 s (``--row=2 --repeats=3 --only=step``),
  conv chain fwd+bwd at row 1 821 -> 646 ms; the row-1 step did not move measurably (1353 vs
  1324 ms, its small-channel convs keep XLA's gradient).
* Row 1 (``--repeats=5``): net fwd+bwd 91 % of the step (forward 28 %), BatchNorm ~15 %
  (net with BN -> identity 1045 vs 1227 ms), the YOLO loss 0.1 % (1.3 ms), optimizer + psum
  + pmap the remaining ~9 %. jit + shard_map instead of pmap: 5 % faster at row 1 (1286 vs
  1353 ms; 1240 vs 1345 in another run), none at row 2 (17.79 vs 17.68 s): not adopted.
  NCHW via dimension_numbers: forward 37 % slower (433 vs 316 ms), fwd+bwd the same.
* XLA flags at row 1 (``--only=step,chain --repeats=3``): ``--xla_cpu_use_onednn=true``
  1290 ms, ``--xla_cpu_multi_thread_eigen=false`` 1273, ``--xla_cpu_use_xnnpack=false``
  1232, against 1286-1353 without flags in other runs: none beyond the noise;
  ``--xla_cpu_use_thunk_runtime=false`` is no longer supported (a warning, ignored).
* Against PyTorch (2.13, eager, channels-last, 2 threads) in the same runs: ours / PyTorch
  images/s 1.04 at row 1 (1353 vs 1408 ms, ``--repeats=5``); at row 2 1.16 in one run
  (17.7 vs 20.5 s, ``--only=step --repeats=3``) and 0.67 in the full run (11.06 vs 7.39 s,
  ``--row=2 --repeats=2``; 0.42 with ``conv_grad=xla``, 17.6 s). All runs were loaded and
  PyTorch's step swung 7.4-20.5 s (idle: 5.29 s in README): its ratio is not stable here;
  the same-run speed-up of our step (1.59-1.73x at row 2) is the robust figure.
* Row 2 (full run): the conv chain fwd+bwd with the matmul kernel gradient is faster than
  PyTorch's oneDNN convs at the same shapes (4.90 vs 6.39 s, 1.31x; forward alone 2.43 vs
  1.55 s, 0.64x), yet the network's fwd+bwd is 10.05 s: BatchNorm 1.72 s (BN -> identity
  8.33 s), and ~3.4 s more than the convs in LeakyReLU, max-pool, concat and their gradients
  at 416 px. So at row 2 the convs are not the floor; that elementwise / layout work is the
  next target (e.g. fusing BN + LeakyReLU into the conv's epilogue, which XLA:CPU does not).
* The floor at row 1: XLA:CPU's forward convs at its small-channel shapes (first conv
  86 vs 34 ms, 16-32 channels at 64 px 13-15 vs 7 ms, per-layer table) are ~2x oneDNN's;
  no flag of this jaxlib routes them to oneDNN (``xla_cpu_use_onednn`` covers matmul /
  conv fusions and moved nothing here). What would move it: oneDNN- or XNNPACK-backed
  convolution custom calls / thunks in XLA:CPU (the experimental oneDNN and XNN fusion
  flags list only dot, eltwise and reduce today), or a conv as an im2col matmul per layer
  where that wins (it did not in the forward at row 1's shapes: in a side test 1.5-17x
  slower than XLA's forward at C <= 32).
"""
import os
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import config_lib  # noqa: E402
from anchor_jax.core import losses  # noqa: E402
from anchor_jax.model import conv as conv_lib  # noqa: E402
from anchor_jax.model import yolov2  # noqa: E402
from anchor_jax.training import parallel, train  # noqa: E402
from experiments.benchmarks import _steps, bench_vs_torch  # noqa: E402

ROWS = {1: (0.25, 256, 16), 2: (1.0, 416, 8)}   # width, image size, batch

FLAGS = flags.FLAGS
flags.DEFINE_integer("row", 1, "1: width 0.25, 256 px, batch 16; 2: DarkNet-19 width 1.0, "
                     "416 px, batch 8.")
flags.DEFINE_float("width", None, "Overrides the row's width.")
flags.DEFINE_integer("size", None, "Overrides the row's image size.")
flags.DEFINE_integer("batch", None, "Overrides the row's batch.")
# --repeats (timed rounds, median) and --threads (PyTorch's intra-op threads) are
# bench_vs_torch's flags.
flags.DEFINE_string("max_pool", "reshape", "model.max_pool.")
flags.DEFINE_string("conv_grad", "matmul", "model.conv_grad of the profiled model; the step is "
                    "also timed with the other value.")
flags.DEFINE_string("xla_flags", "", "Appended to XLA_FLAGS before the backend starts.")
flags.DEFINE_bool("per_layer", False, "Also time every conv shape alone (fwd, dx, dw).")
flags.DEFINE_string("only", "", "Time only the components whose name contains one of these "
                    "comma-separated words (e.g. 'step,chain').")
flags.DEFINE_bool("torch", True, "Time the PyTorch counterparts if torch is importable.")


def _config(width, size, batch, conv_grad=None):
  return config_lib.load(os.path.join(REPO, "configs/synthetic.py:full"), [
      f"--config.model.width={width}", f"--config.input.image_size={size}",
      f"--config.train.batch_size={batch}", f"--config.model.max_pool={FLAGS.max_pool}",
      f"--config.model.conv_grad={conv_grad or FLAGS.conv_grad}",
      "--config.dataset.num_classes=5"])


def _ready(fn, *args):
  """A closure calling ``fn(*args)`` and waiting for the result."""
  return lambda: jax.block_until_ready(fn(*args))


def _stateful(fn, state, *args):
  """A closure calling ``state, out = fn(state, *args)`` (donated state carried inside)."""
  slot = [state]

  def call():
    slot[0], out = fn(slot[0], *args)
    jax.block_until_ready(out)
  return call


def time_all(closures: dict, repeats: int) -> dict:
  """Median ms of each closure: one warm-up call each, then alternated rounds."""
  for call in closures.values():
    call()
  times = {name: [] for name in closures}
  for _ in range(repeats):
    for name, call in closures.items():
      t0 = time.perf_counter()
      call()
      times[name].append(time.perf_counter() - t0)
  return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def conv_shapes(model, images):
  """[(input shape NHWC, kernel size, out channels, bias)] of every nn.Conv, in call order."""
  shapes = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Conv) and context.method_name == "__call__":
      m = context.module
      shapes.append((tuple(args[0].shape), m.kernel_size[0], m.features, m.use_bias))
    return next_fun(*args, **kwargs)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
  return shapes


def _bn_identity(next_fun, args, kwargs, context):
  if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
    return args[0]
  return next_fun(*args, **kwargs)


def conv_chain(shapes, layout="NHWC", seed=0, conv_fn=None):
  """(fwd fn, fwd+bwd fn, args) of the convs of ``shapes`` as independent lax convs
  (``conv_fn(x, w)`` instead, NHWC only, if given)."""
  rng = np.random.default_rng(seed)
  xs, ws = [], []
  for shape, k, cout, _ in shapes:
    x = rng.standard_normal(shape, np.float32)
    w = rng.standard_normal((k, k, shape[-1], cout), np.float32) * 0.05
    if layout == "NCHW":
      x, w = x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1)
    xs.append(jnp.asarray(x))
    ws.append(jnp.asarray(w))
  dims = ("NHWC", "HWIO", "NHWC") if layout == "NHWC" else ("NCHW", "OIHW", "NCHW")

  def fwd(xs, ws):
    if conv_fn is not None:
      return [conv_fn(x, w) for x, w in zip(xs, ws)]
    return [jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dims)
            for x, w in zip(xs, ws)]
  cts = [jnp.ones_like(o) * 1e-3 for o in jax.eval_shape(fwd, xs, ws)]

  def fwd_bwd(x0, xs_rest, ws, cts):   # no gradient to the first input (the image)
    outs, pull = jax.vjp(lambda r, w: fwd([x0, *r], w), xs_rest, ws)
    return pull(cts)
  return jax.jit(fwd), jax.jit(fwd_bwd), (xs, ws, cts)


def torch_conv_chain(shapes, threads):
  """(fwd closure, fwd+bwd closure) of the same convs in eager PyTorch, channels-last."""
  import torch  # noqa: PLC0415 -- optional, benchmark-only dependency
  torch.set_num_threads(threads)
  xs, ws = [], []
  for i, (shape, k, cout, _) in enumerate(shapes):
    b, h, w, c = shape
    x = torch.randn(b, c, h, w).to(memory_format=torch.channels_last)
    xs.append(x.requires_grad_(i > 0))
    ws.append((torch.randn(cout, c, k, k) * 0.05).to(memory_format=torch.channels_last)
              .requires_grad_())

  def outs():
    return [torch.nn.functional.conv2d(x, w, padding=w.shape[-1] // 2) for x, w in zip(xs, ws)]

  def fwd():
    with torch.no_grad():
      outs()

  def fwd_bwd():
    for t in xs + ws:
      t.grad = None
    o = outs()
    torch.autograd.backward(o, [torch.full_like(t, 1e-3) for t in o])
  return fwd, fwd_bwd


def jit_step(step, state, batch):
  """``step`` (unmapped, axis ``parallel.AXIS``) under jit of a one-device shard_map (no
  pmap), donated state; -> (fn, state, batch) placed for it."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), (parallel.AXIS,))
  spec = jax.sharding.PartitionSpec(parallel.AXIS)

  def per_device(s, b):
    squeeze = lambda t: jax.tree.map(lambda x: x[0], t)
    new_s, m = step(squeeze(s), squeeze(b))
    return jax.tree.map(lambda x: x[None], (new_s, m))
  smap = jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec), out_specs=spec)
  put = lambda t: jax.device_put(t, jax.sharding.NamedSharding(mesh, spec))
  return jax.jit(smap, donate_argnums=(0,)), put(jax.tree.map(lambda x: np.asarray(x)[None],
                                                              state)), put(batch)


def build(width, size, batch):
  """-> ({component: closure}, conv shapes, model, torch closures or {})."""
  config = _config(width, size, batch)
  step, state, pbatch, model = _steps.train_step_parts(config)
  params, stats = jax.device_put(state.params), jax.device_put(state.batch_stats)
  closures = {"step (pmap)": _stateful(jax.pmap(step, axis_name=parallel.AXIS,
                                                donate_argnums=(0,)),
                                       parallel.replicate(state), pbatch)}
  closures["step (jit + shard_map)"] = _stateful(*jit_step(step, state, pbatch))
  other = [g for g in yolov2.CONV_GRADS if g != FLAGS.conv_grad][0]
  ostep, ostate, obatch, _ = _steps.train_step_parts(_config(width, size, batch, other))
  closures[f"step (pmap, conv_grad={other})"] = _stateful(
      jax.pmap(ostep, axis_name=parallel.AXIS, donate_argnums=(0,)), parallel.replicate(ostate),
      obatch)
  local = jax.tree.map(lambda x: jnp.asarray(x[0]), pbatch)
  images = local["image"].astype(jnp.float32) / 255.0
  plain = model.clone(bn_axis_name=None)

  def forward(p, x):
    return plain.apply({"params": p, "batch_stats": stats}, x, train=True,
                       mutable=["batch_stats"])
  closures["forward (train=True)"] = _ready(jax.jit(forward), params, images)

  def net_loss(p, x):
    return jnp.sum(forward(p, x)[0]) * 1e-3
  closures["net fwd+bwd (trivial loss)"] = _ready(jax.jit(jax.grad(net_loss)), params, images)

  def net_loss_no_bn(p, x):
    with nn.intercept_methods(_bn_identity):
      return net_loss(p, x)
  closures["net fwd+bwd, BN -> identity"] = _ready(jax.jit(jax.grad(net_loss_no_bn)), params,
                                                   images)

  out = jax.jit(forward)(params, images)[0]
  gt_mask = local["mask"] & ~local["difficult"]
  kw = train.loss_options(config)

  def loss(o, a):
    return losses.yolo_loss(o, a, local["boxes"], local["labels"], gt_mask, temperature=0.5,
                            cluster_weight=0.5, prior_scale=0.01, **kw)[0]
  closures["YOLO loss fwd+bwd"] = _ready(jax.jit(jax.grad(loss, argnums=(0, 1))), out,
                                         params["head"]["anchor_log_wh"])

  shapes = conv_shapes(plain, images)
  for layout in ("NHWC", "NCHW"):
    fwd, fwd_bwd, (xs, ws, cts) = conv_chain(shapes, layout)
    closures[f"conv chain fwd ({layout})"] = _ready(fwd, xs, ws)
    closures[f"conv chain fwd+bwd ({layout})"] = _ready(fwd_bwd, xs[0], xs[1:], ws, cts)
  _, fwd_bwd, (xs, ws, cts) = conv_chain(shapes, conv_fn=conv_lib.conv_same)
  closures["conv chain fwd+bwd (matmul dw)"] = _ready(fwd_bwd, xs[0], xs[1:], ws, cts)

  torch_closures = {}
  if FLAGS.torch and not _torch_importable():
    print("torch not importable: PyTorch rows skipped")
  elif FLAGS.torch:
    tfwd, tfwd_bwd = torch_conv_chain(shapes, FLAGS.threads)
    torch_closures = {"torch step": bench_vs_torch.torch_step(width, size, batch, FLAGS.threads),
                      "torch conv chain fwd": tfwd, "torch conv chain fwd+bwd": tfwd_bwd}
  return closures, shapes, torch_closures


# Which PyTorch row each of ours is compared with.
VERSUS = {"step (pmap)": "torch step", "step (jit + shard_map)": "torch step",
          "step (pmap, conv_grad=xla)": "torch step", "step (pmap, conv_grad=matmul)": "torch step",
          "conv chain fwd+bwd (matmul dw)": "torch conv chain fwd+bwd",
          "conv chain fwd (NHWC)": "torch conv chain fwd",
          "conv chain fwd (NCHW)": "torch conv chain fwd",
          "conv chain fwd+bwd (NHWC)": "torch conv chain fwd+bwd",
          "conv chain fwd+bwd (NCHW)": "torch conv chain fwd+bwd"}


def per_layer(shapes, repeats, threads):
  """Prints every conv shape's fwd, input-grad and kernel-grad ms, with PyTorch's."""
  print(f"\nper conv (ms, median of {repeats}): ours fwd / dx / dw; torch fwd / fwd+dx+dw")
  closures = {}
  have_torch = FLAGS.torch and _torch_importable()
  for i, shape in enumerate(shapes):
    (x,), (w,), _ = conv_chain([shape])[2]
    conv = lambda x, w: jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    g = jnp.ones(jax.eval_shape(conv, x, w).shape, jnp.float32)
    closures[(i, "fwd")] = _ready(jax.jit(conv), x, w)
    closures[(i, "dx")] = _ready(jax.jit(lambda x, w, g: jax.vjp(conv, x, w)[1](g)[0]), x, w, g)
    closures[(i, "dw")] = _ready(jax.jit(lambda x, w, g: jax.vjp(conv, x, w)[1](g)[1]), x, w, g)
    if have_torch:
      closures[(i, "t fwd")], closures[(i, "t both")] = _torch_single(shape, threads)
  ms = time_all(closures, repeats)
  print(f"{'#':>3} {'input':>20} {'k':>2} {'out':>5} {'fwd':>8} {'dx':>8} {'dw':>8}"
        f" {'t fwd':>8} {'t all':>8} {'t/ours':>7}")
  for i, (shape, k, cout, _) in enumerate(shapes):
    ours = ms[(i, "fwd")] + ms[(i, "dx")] + ms[(i, "dw")]
    line = (f"{i:>3} {str(shape):>20} {k:>2} {cout:>5} {ms[(i, 'fwd')]:8.1f} "
            f"{ms[(i, 'dx')]:8.1f} {ms[(i, 'dw')]:8.1f}")
    if (i, "t fwd") in ms:
      line += f" {ms[(i, 't fwd')]:8.1f} {ms[(i, 't both')]:8.1f} {ms[(i, 't both')] / ours:7.2f}"
    print(line)
  tot = {key: sum(v for (_, kk), v in ms.items() if kk == key) for key in
         ("fwd", "dx", "dw", "t fwd", "t both")}
  print(f"sum: ours fwd {tot['fwd']:.0f}, dx {tot['dx']:.0f}, dw {tot['dw']:.0f} ms; "
        f"torch fwd {tot['t fwd']:.0f}, fwd+dx+dw {tot['t both']:.0f} ms")


def _torch_single(shape, threads):
  """(fwd, fwd + input and kernel gradients) closures of one conv in PyTorch."""
  import torch  # noqa: PLC0415 -- optional, benchmark-only dependency
  torch.set_num_threads(threads)
  (b, h, w, c), k, cout, _ = shape
  x = torch.randn(b, c, h, w).to(memory_format=torch.channels_last).requires_grad_()
  wt = (torch.randn(cout, c, k, k) * 0.05).to(memory_format=torch.channels_last).requires_grad_()

  def fwd():
    with torch.no_grad():
      torch.nn.functional.conv2d(x, wt, padding=k // 2)

  def both():
    x.grad = wt.grad = None
    o = torch.nn.functional.conv2d(x, wt, padding=k // 2)
    o.backward(torch.ones_like(o))
  return fwd, both


def _torch_importable() -> bool:
  try:
    import torch  # noqa: F401, PLC0415 -- optional, benchmark-only dependency
  except ImportError:
    return False
  return True


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.xla_flags:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FLAGS.xla_flags}".strip()
  width, size, batch = ROWS[FLAGS.row]
  width = FLAGS.width if FLAGS.width is not None else width
  size, batch = FLAGS.size or size, FLAGS.batch or batch
  closures, shapes, torch_closures = build(width, size, batch)
  print(f"width {width}, {size} px, batch {batch}, max_pool {FLAGS.max_pool}; "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; jax {jax.__version__}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; median of {FLAGS.repeats} "
        f"alternated rounds")
  closures = {**closures, **torch_closures}
  if FLAGS.only:
    closures = {k: v for k, v in closures.items()
                if any(word in k for word in FLAGS.only.split(","))}
  ms = time_all(closures, FLAGS.repeats)
  step = ms.get("step (pmap)", float("nan"))
  print(f"{'component':32s} {'ms':>9} {'share':>7} {'torch ms':>9} {'torch/ours':>10}")
  for name, t in ms.items():
    line = f"{name:32s} {t:9.1f} {100 * t / step:6.1f}%"
    if VERSUS.get(name) in ms:
      line += f" {ms[VERSUS[name]]:9.1f} {ms[VERSUS[name]] / t:10.2f}"
    print(line)
  print(f"images/s: ours (pmap) {1e3 * batch / step:.1f}" + (
      f", torch {1e3 * batch / ms['torch step']:.1f}" if "torch step" in ms else ""))
  if FLAGS.per_layer:
    per_layer(shapes, FLAGS.repeats, FLAGS.threads)


if __name__ == "__main__":
  app.run(main)
