"""Input data: datasets that yield padded, fixed-shape detection examples."""
