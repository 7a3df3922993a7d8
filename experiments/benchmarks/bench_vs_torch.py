"""The project's CPU training step against PyTorch's, same network, timed in one run.

  pip install torch==2.13.0      # benchmark-only, not in requirements.txt (CPU wheel)
  python experiments/benchmarks/bench_vs_torch.py
  python experiments/benchmarks/bench_vs_torch.py --cases=0.25:256:16 --repeats=10

For each case ``width:size:batch`` (default: DarkNet-19 layers at width 0.25, 256 px,
batch 16, and width 1.0, 416 px, batch 8) it builds

* anchor_jax: the pmapped ``train_step`` on one device (float32, the full YOLO loss,
  synthetic data), with ``model.max_pool`` = window and = reshape;
* PyTorch: the same layers in eager mode (conv without bias + BatchNorm + LeakyReLU 0.1,
  2 x 2 max-pools, the passthrough's space-to-depth, the 1 x 1 prediction conv with bias),
  channels-last, ``torch.set_num_threads(--threads)``, SGD with momentum on an MSE loss of
  the output (a cheaper loss than ours: the comparison favours PyTorch slightly),

and times them in alternation (one step of each per round, so the machine's load hits all
alike): median seconds per step, images/s and the ratio anchor_jax / PyTorch in images/s.
"""
import os
import statistics
import sys
import time

import jax
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # run as a script from anywhere: the repository's packages
from anchor_jax import config_lib  # noqa: E402
from anchor_jax.model import yolov2  # noqa: E402
from experiments.benchmarks import _steps  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", ["0.25:256:16", "1.0:416:8"], "width:size:batch, comma-separated.")
flags.DEFINE_integer("repeats", 8, "Timed rounds (median).")
flags.DEFINE_integer("threads", 2, "PyTorch intra-op threads.")
flags.DEFINE_list("max_pools", ["window", "reshape"], "anchor_jax model.max_pool values.")


def jax_step(width: float, size: int, batch: int, max_pool: str):
  """A closure running one anchor_jax train step (state carried inside)."""
  config = config_lib.load(os.path.join(REPO, "configs/synthetic.py:full"), [
      f"--config.model.width={width}", f"--config.input.image_size={size}",
      f"--config.train.batch_size={batch}", f"--config.model.max_pool={max_pool}",
      "--config.dataset.num_classes=5"])
  fn, state, data, _ = _steps.pmapped_train_step(config)
  slot = [state]

  def step():
    slot[0], metrics = fn(slot[0], data)
    jax.block_until_ready(metrics)
  return step


def torch_step(width: float, size: int, batch: int, threads: int):
  """A closure running one eager PyTorch SGD step of the same layers."""
  import torch  # noqa: PLC0415 -- optional, benchmark-only dependency
  from torch import nn  # noqa: PLC0415
  torch.set_num_threads(threads)
  arch = yolov2.ARCHS["darknet19"]
  ch = lambda c: yolov2.scale_channels(c, width, min_channels=8)

  def conv(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.1))

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      layers, cin = [], 3
      self.pass_at = max(i for i, layer in enumerate(arch.layers) if layer == yolov2.MAXPOOL)
      for layer in arch.layers:
        if layer == yolov2.MAXPOOL:
          layers.append(nn.MaxPool2d(2))
        else:
          layers.append(conv(cin, ch(layer[1]), layer[0]))
          cin = ch(layer[1])
      self.backbone = nn.ModuleList(layers)
      fine = ch(512)
      head = ch(arch.head_channels)
      self.head1, self.head2 = conv(cin, head, 3), conv(head, head, 3)
      self.passthrough = conv(fine, ch(arch.passthrough_channels), 1)
      self.head3 = conv(head + 4 * ch(arch.passthrough_channels), head, 3)
      self.pred = nn.Conv2d(head, 5 * 10, 1)

    def forward(self, x):
      for i, layer in enumerate(self.backbone):
        if i == self.pass_at:
          fine = x
        x = layer(x)
      x = self.head2(self.head1(x))
      p = nn.functional.pixel_unshuffle(self.passthrough(fine), 2)
      return self.pred(self.head3(torch.cat([p, x], 1)))

  net = Net().to(memory_format=torch.channels_last)
  opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
  images = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
  target = torch.zeros(batch, 50, size // 32, size // 32)

  def step():
    opt.zero_grad()
    loss = nn.functional.mse_loss(net(images), target)
    loss.backward()
    opt.step()
  return step


def main(argv):
  del argv
  print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; median of {FLAGS.repeats} "
        "alternated rounds; images/s")
  for case in FLAGS.cases:
    width, size, batch = case.split(":")
    width, size, batch = float(width), int(size), int(batch)
    steps = {f"jax ({pool})": jax_step(width, size, batch, pool) for pool in FLAGS.max_pools}
    steps["torch"] = torch_step(width, size, batch, FLAGS.threads)
    for step in steps.values():   # compile / warm up
      step()
    times = {name: [] for name in steps}
    for _ in range(FLAGS.repeats):
      for name, step in steps.items():
        t0 = time.perf_counter()
        step()
        times[name].append(time.perf_counter() - t0)
    torch_s = statistics.median(times["torch"])
    print(f"width {width}, {size} px, batch {batch}:")
    for name, ts in times.items():
      s = statistics.median(ts)
      print(f"  {name:15s} {s:7.3f} s/step  {batch / s:7.1f} images/s  "
            f"(anchor_jax / PyTorch images/s: {torch_s / s:.2f})")


if __name__ == "__main__":
  app.run(main)
