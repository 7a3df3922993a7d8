"""anchor_jax tests; sub-folders mirror the package (tests/core <-> anchor_jax/core ...)."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root
