"""``python -m anchor_jax.main``: train YOLOv2 with learnable anchors (the code is in ``tools/train.py``)."""
import sys

from anchor_jax.tools import train

if __name__ == "__main__":
  sys.exit(train.run())
