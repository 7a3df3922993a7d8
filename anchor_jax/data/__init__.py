"""Input data: datasets by config name, padded fixed-shape batches, augmentation."""
