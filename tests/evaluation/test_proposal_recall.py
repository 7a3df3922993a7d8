"""RPN recall at k proposals, against hand-computed IoUs."""
import numpy as np
import pytest

from anchor_jax.evaluation import proposal_recall


def test_recall_at_k_and_average_recall_by_hand():
  gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float64)
  # Proposal 0 covers GT 0 at IoU 1; proposal 1 covers GT 1 at IoU 50/100 * ... (see below).
  props = np.array([[0, 0, 10, 10],        # GT 0: IoU 1.0
                    [20, 20, 30, 25],      # GT 1: IoU 50/100 = 0.5
                    [20, 20, 30, 29]],     # GT 1: IoU 90/100 = 0.9
                   np.float64)
  r = proposal_recall.ProposalRecall(top_k=(1, 2, 3))
  r.add(gt, props)
  out = r.compute()
  assert out["num_gt"] == 2
  assert out["RPN_recall@1"] == pytest.approx(0.5)     # only GT 0 within the first proposal
  assert out["RPN_recall@2"] == pytest.approx(1.0)     # GT 1 at IoU 0.5 exactly counts
  # AR: GT 0 hits all 10 thresholds; GT 1 at k=2 hits 0.5 only, at k=3 0.5..0.9 (9 of 10).
  assert out["RPN_AR@2"] == pytest.approx((10 + 1) / 20)
  assert out["RPN_AR@3"] == pytest.approx((10 + 9) / 20)
  assert out["RPN_AR@1"] == pytest.approx(10 / 20)


def test_padding_rows_and_images_without_proposals_or_gt():
  r = proposal_recall.ProposalRecall(top_k=(2,))
  gt = np.array([[0, 0, 10, 10]], np.float64)
  r.add(gt, np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), valid=np.array([False, True]))
  r.add(gt, np.zeros((0, 4)))                # no proposals: the GT is missed
  r.add(np.zeros((0, 4)), np.array([[0, 0, 1, 1]]))   # no GT: nothing counted
  out = r.compute()
  assert out["num_gt"] == 2 and out["RPN_recall@2"] == 0.0   # the padded hit does not count
  empty = proposal_recall.ProposalRecall().compute()
  assert empty["RPN_recall@50"] == 0.0 and empty["num_gt"] == 0
