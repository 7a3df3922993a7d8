"""``python -m anchor_jax.evaluate``: score detections, or a training run's checkpoint (the code is in ``tools/evaluate.py``)."""
import sys

from anchor_jax.tools import evaluate

if __name__ == "__main__":
  sys.exit(evaluate.run())
