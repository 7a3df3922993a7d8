r"""A torchvision or timm ResNet state dict -> the ``.npz`` that ``model.init_from`` reads.

  pip install torch torchvision        # converter only, not in requirements.txt
  python -m experiments.tools.convert_resnet_torchvision --torchvision=resnet50 \
      --output=resnet50_imagenet.npz   # torchvision's default ImageNet weights
  python -m experiments.tools.convert_resnet_torchvision --timm=resnet50.a1_in1k \
      --output=resnet50_a1.npz         # pip install timm
  python -m experiments.tools.convert_resnet_torchvision --checkpoint=resnet50.pth \
      --output=resnet50.npz            # a saved state dict (torch.save)

The key layout is ``anchor_jax/model/resnet_weights.py``'s: ``layer1.0.conv1.weight`` (OIHW)
-> ``layer1/0/conv1/kernel`` (HWIO); BatchNorm ``weight``/``bias``/``running_mean``/
``running_var`` -> ``scale``/``bias``/``mean``/``var``; ``downsample.0`` / ``downsample.1``
-> ``downsample_conv`` / ``downsample_bn``; ``fc.*`` and ``num_batches_tracked`` dropped.
timm's ``resnet50`` uses torchvision's module names; its variants with a deep stem
(``resnet50d``: ``conv1.0``, ...) or attention blocks are another architecture and are
refused. The downloads need a machine that reaches the model hubs; the ``.npz`` then goes to
the training machine (which needs neither torch nor a network).
"""
from __future__ import annotations

import re
import sys
from typing import Mapping

import numpy as np
from absl import flags

from anchor_jax.errors import UserError
from anchor_jax.tools import cli

WRAPPER_PREFIXES = ("module.", "model.")   # DataParallel / training-checkpoint wrappers
_BN_LEAVES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_MODULE = re.compile(
    r"^(?P<module>conv1|bn1|layer[1-4]\.\d+\.(?:conv\d|bn\d|downsample\.[01]))\.(?P<leaf>\w+)$")


class ConversionError(UserError):
  """A state dict that is not a plain torchvision-layout ResNet."""


def npz_name(key: str, ndim: int) -> str | None:
  """The npz key of torchvision state-dict ``key`` (an array of ``ndim`` dims), or None for
  an entry that is not stored (``fc``, ``num_batches_tracked``)."""
  if key.startswith("fc.") or key.endswith("num_batches_tracked"):
    return None
  match = _MODULE.match(key)
  if not match:
    raise ConversionError(f"state-dict key {key!r} is not part of a torchvision-layout ResNet "
                          "(conv1, bn1, layer1-4 blocks, fc)")
  module, leaf = match.group("module"), match.group("leaf")
  module = module.replace("downsample.0", "downsample_conv").replace("downsample.1",
                                                                      "downsample_bn")
  module = module.replace(".", "/")
  is_conv = module.rsplit("/", 1)[-1].startswith(("conv", "downsample_conv"))
  if is_conv:
    if leaf != "weight" or ndim != 4:
      raise ConversionError(f"{key!r}: expected a 4-d conv weight without bias, got {leaf} "
                            f"with {ndim} dims")
    return f"{module}/kernel"
  if leaf not in _BN_LEAVES or ndim != 1:
    raise ConversionError(f"{key!r}: expected a BatchNorm weight/bias/running_mean/"
                          f"running_var vector, got {leaf} with {ndim} dims")
  return f"{module}/{_BN_LEAVES[leaf]}"


def unwrap(state_dict: Mapping) -> dict:
  """The plain state dict inside a checkpoint (``{'state_dict': ...}`` / ``{'model': ...}``),
  with DataParallel's ``module.`` prefix removed."""
  for outer in ("state_dict", "model"):
    if outer in state_dict and isinstance(state_dict[outer], Mapping):
      state_dict = state_dict[outer]
  out = {}
  for key, value in state_dict.items():
    for prefix in WRAPPER_PREFIXES:
      if key.startswith(prefix):
        key = key[len(prefix):]
    out[key] = value
  return out


def convert_state_dict(state_dict: Mapping) -> dict[str, np.ndarray]:
  """{torchvision key: array (NumPy, or anything ``np.asarray`` takes)} -> {npz key: float32
  array}: conv weights OIHW -> HWIO, BatchNorm leaves renamed (module docstring)."""
  out = {}
  for key, value in unwrap(state_dict).items():
    array = np.asarray(value)
    name = npz_name(key, array.ndim)
    if name is None:
      continue
    if name.endswith("/kernel"):
      array = array.transpose(2, 3, 1, 0)   # [O, I, H, W] -> [H, W, I, O]
    out[name] = np.ascontiguousarray(array, dtype=np.float32)
  if "conv1/kernel" not in out:
    raise ConversionError("the state dict has no conv1.weight: not a torchvision-layout ResNet")
  return out


def _torch_state_dict(fv) -> dict:
  """The chosen source's state dict as NumPy arrays (imports torch and friends)."""
  try:
    import torch  # noqa: PLC0415 -- optional: the converter alone needs torch
  except ImportError as e:
    raise UserError("the converter needs PyTorch: pip install torch torchvision "
                    "(and timm for --timm); the training machine does not") from e
  if fv.checkpoint:
    state = torch.load(fv.checkpoint, map_location="cpu", weights_only=True)
  elif fv.torchvision:
    import torchvision  # noqa: PLC0415 -- optional, converter only
    state = torchvision.models.get_model(fv.torchvision, weights="DEFAULT").state_dict()
  else:
    import timm  # noqa: PLC0415 -- optional, converter only
    state = timm.create_model(fv.timm, pretrained=True).state_dict()
  state = unwrap(state)
  return {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
          for k, v in state.items()}


def define_flags(fv: flags.FlagValues, argv) -> None:
  del argv
  flags.DEFINE_string("checkpoint", "", "A torch.save'd state dict (.pth).", flag_values=fv)
  flags.DEFINE_string("torchvision", "", "A torchvision model name (resnet50): its default "
                      "ImageNet weights.", flag_values=fv)
  flags.DEFINE_string("timm", "", "A timm model name (resnet50.a1_in1k): pretrained=True.",
                      flag_values=fv)
  flags.DEFINE_string("output", None, "The .npz to write.", flag_values=fv)
  flags.mark_flag_as_required("output", flag_values=fv)


def main(fv: flags.FlagValues, args) -> int:
  if args:
    raise cli.UsageError(f"unexpected arguments {args}")
  sources = [s for s in (fv.checkpoint, fv.torchvision, fv.timm) if s]
  if len(sources) != 1:
    raise cli.UsageError("give exactly one of --checkpoint, --torchvision, --timm")
  arrays = convert_state_dict(_torch_state_dict(fv))
  np.savez(fv.output, **arrays)
  count = sum(a.size for a in arrays.values())
  print(f"wrote {fv.output}: {len(arrays)} arrays, {count:,} floats")
  return 0


def run(argv=None) -> int:
  """Runs the tool on ``argv`` (default sys.argv[1:]); returns the exit status."""
  return cli.run(define_flags, main, argv, doc=__doc__)


if __name__ == "__main__":
  sys.exit(run())
