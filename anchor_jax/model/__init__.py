"""The detector: YOLOv2 (DarkNet-19 or the small CPU variant) in flax.linen."""
