"""``python -m anchor_jax.prepare``: prepare a TFDS dataset once (the code is in ``tools/prepare.py``)."""
import sys

from anchor_jax.tools import prepare

if __name__ == "__main__":
  sys.exit(prepare.run())
