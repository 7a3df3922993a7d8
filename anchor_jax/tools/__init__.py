"""The command-line tools (absl flags; one error helper in ``cli``). Run them through the
entry modules: ``python -m anchor_jax.main``, ``.evaluate``, ``.anchors``, ``.inspect``,
``.prepare``."""
