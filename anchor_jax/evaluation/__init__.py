"""Evaluation: decoding, NMS, VOC/COCO metrics, the accumulator, and running a model over
an eval split."""
