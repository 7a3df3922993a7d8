"""``python -m anchor_jax.inspect``: figures and fit tables of a training run (the code is in ``tools/inspect.py``)."""
import sys

from anchor_jax.tools import inspect

if __name__ == "__main__":
  sys.exit(inspect.run())
