"""``python -m anchor_jax.anchors``: fit, report and export anchors (the code is in ``tools/anchors.py``)."""
import sys

from anchor_jax.tools import anchors

if __name__ == "__main__":
  sys.exit(anchors.run())
