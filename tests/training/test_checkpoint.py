"""anchor_jax/checkpoint.py: a checkpoint that does not fit the model is refused by name."""
import numpy as np
import pytest

from anchor_jax.training import checkpoint as ckpt_lib


def test_restore_round_trip_and_shape_mismatch(tmp_path):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), keep=2)
  state = {"head": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4)},
           "step": np.int32(7)}
  ckpt.save(5, state, {"data_position": 5})
  restored, meta = ckpt.restore(5, {"head": {"kernel": np.zeros((3, 4), np.float32)},
                                    "step": np.int32(0)})
  np.testing.assert_array_equal(restored["head"]["kernel"], state["head"]["kernel"])
  assert int(restored["step"]) == 7 and meta["data_position"] == 5
  # A model with 5 outputs instead of 4 (e.g. another class list) must not get the old head.
  with pytest.raises(ckpt_lib.CheckpointError, match=r"kernel.*\(3, 4\) vs model \(3, 5\)"):
    ckpt.restore(5, {"head": {"kernel": np.zeros((3, 5), np.float32)}, "step": np.int32(0)})
  ckpt.close()
