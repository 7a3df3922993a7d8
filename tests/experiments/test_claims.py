"""experiments/claims.py: the Table 1 claims from workdirs, with hand-computed numbers."""
import json

import pytest

from experiments import claims, results, run
from experiments import workdir as wd
from tests.experiments.test_run import TRAINER, write_sweep


def test_matched_iou_finds_the_best_one_to_one_matching():
  a = [(1.0, 1.0), (2.0, 4.0)]
  b = [(2.0, 4.0), (1.0, 2.0)]
  # (1,1)<->(1,2): 1/2, (2,4)<->(2,4): 1  (the crossed matching sums 1/8 + 1/4 only).
  assert claims.matched_iou(a, b) == pytest.approx(0.75)
  assert claims.matched_iou(a, a[::-1]) == pytest.approx(1.0)
  with pytest.raises(ValueError, match=r"\[A, 2\]"):
    claims.matched_iou(a, b[:1])


def test_matched_side_diff_is_the_worst_side_of_the_iou_matching():
  a = [(10.0, 20.0), (40.0, 40.0)]
  b = [(42.0, 40.0), (10.0, 19.0)]          # matched: (10,20)<->(10,19), (40,40)<->(42,40)
  # Sides: 20 / 19 - 1 = 5.26 %, 42 / 40 - 1 = 5 %: the worst is 20 / 19 - 1.
  assert claims.matched_side_diff(a, b) == pytest.approx(20 / 19 - 1)
  assert claims.matched_side_diff(b, a) == pytest.approx(20 / 19 - 1)   # symmetric
  assert claims.matched_side_diff(a, a[::-1]) == 0.0


def _rec(row, col, seed, ap50, anchors=None, status=wd.STATUS_DONE):
  return results.Record(name=f"{row}_{col}", seed=seed, status=status, workdir="",
                        row=row, col=col, metrics={"AP50": ap50}, anchors_px=anchors)


SWEEP = {"table": {"rows": ["identical", "k-means", "tool"], "cols": ["Baseline", "Opt"]},
         "runs": [{"row": r, "col": c} for r in ("identical", "k-means") for c in ("Baseline", "Opt")]
         + [{"row": "tool", "col": "Baseline"}]}   # "tool": a Baseline-only row


def test_check_computes_gains_spread_and_agreement_by_hand():
  anchors = {0: [[10, 10], [20, 40]], 1: [[10, 20], [20, 40]]}
  recs = [
      _rec("identical", "Baseline", 0, 0.10), _rec("identical", "Baseline", 1, 0.12),
      _rec("identical", "Opt", 0, 0.13, anchors[0]), _rec("identical", "Opt", 1, 0.14, anchors[0]),
      _rec("k-means", "Baseline", 0, 0.125), _rec("k-means", "Baseline", 1, 0.135),
      _rec("k-means", "Opt", 0, 0.13, anchors[0]), _rec("k-means", "Opt", 1, 0.136, anchors[1]),
      _rec("tool", "Baseline", 0, 0.11), _rec("tool", "Baseline", 1, 0.12),
  ]
  out = claims.check(SWEEP, recs, seeds=[0, 1], min_gain=1.0, max_spread=0.5,
                     max_side_diff=0.05, kmeans_px={0: anchors[0], 1: anchors[1]})
  # The Baseline-only row is no init of the claims; Opt is compared with it by seed.
  assert out["inits"] == ["identical", "k-means"] and out["tools"] == ["tool"]
  assert out["versus"][("identical", "tool")] == pytest.approx([2.0, 2.0])
  assert out["versus"][("k-means", "tool")] == pytest.approx([2.0, 1.6])
  # identical: +3, +2 points -> mean 2.5 >= 1; k-means: +0.5, +0.1 -> 0.3 < 1.
  assert out["gains"]["identical"]["diffs"] == pytest.approx([3.0, 2.0])
  assert out["gains"]["identical"]["holds"] is True
  assert out["gains"]["k-means"]["diffs"] == pytest.approx([0.5, 0.1])
  assert out["gains"]["k-means"]["holds"] is False
  # Opt means: identical 13.5, k-means 13.3 -> spread 0.2; Baseline 11 vs 13 -> 2.
  assert out["spreads"]["Opt"]["spread"] == pytest.approx(0.2)
  assert out["spreads"]["Baseline"]["spread"] == pytest.approx(2.0)
  assert out["robust"] is True
  # Seed 0 identical, seed 1: (10,10) vs (10,20) -> IoU 1/2, (20,40) same -> mean 0.75.
  assert out["pairs"][("identical", "k-means")] == pytest.approx([1.0, 0.75])
  # Worst side: seed 0 equal sets (0), seed 1 height 20 vs 10 (+100 %): mean 50 % > 5 %.
  assert out["sides"][("identical", "k-means")] == pytest.approx([0.0, 1.0])
  assert out["agree"] is False
  assert out["to_kmeans_sides"]["identical"] == pytest.approx([0.0, 1.0])
  # Each seed is compared with its own data's k-means set.
  assert out["to_kmeans"]["k-means"] == pytest.approx([1.0, 1.0])
  assert out["to_kmeans"]["identical"] == pytest.approx([1.0, 0.75])
  text = claims.render(out, command="cmd", title="T")
  # 95 % CI: mean -+ t(.975, 1) std / sqrt(2) = 2.5 -+ 12.706 x .5 -> [-3.85, +8.85].
  assert "| identical | +2.50 ± 0.71 | [-3.85, +8.85] | holds |" in text
  assert "| k-means | +0.30 ± 0.28 | [-2.24, +2.84] | does not hold |" in text
  assert "| Opt | 13.50 | 13.30 | 0.20 |" in text


def test_missing_seed_leaves_the_verdict_open():
  recs = [_rec("identical", "Baseline", 0, 0.10), _rec("identical", "Opt", 0, 0.20),
          _rec("identical", "Baseline", 1, 0.10),
          _rec("identical", "Opt", 1, 0.0, status=wd.STATUS_FAILED),
          _rec("k-means", "Baseline", 0, 0.10), _rec("k-means", "Opt", 0, 0.20),
          _rec("k-means", "Baseline", 1, 0.10), _rec("k-means", "Opt", 1, 0.20)]
  out = claims.check(SWEEP, recs, seeds=[0, 1], min_gain=1.0, max_spread=0.5, max_side_diff=0.05)
  assert out["gains"]["identical"]["diffs"] == pytest.approx([10.0])
  assert out["gains"]["identical"]["holds"] is None
  assert out["gains"]["k-means"]["holds"] is True
  assert out["robust"] is None and out["agree"] is None


def test_cli_on_a_fake_sweep_writes_claims_md(tmp_path, capsys):
  runs = []
  ap = {("identical", "Baseline"): "0.10,0.20", ("identical", "Opt"): "0.30,0.32",
        ("k-means", "Baseline"): "0.25,0.27", ("k-means", "Opt"): "0.31,0.31"}
  for (row, col), values in ap.items():
    runs.append({"name": f"{row}_{col}".replace("-", ""), "row": row, "col": col,
                 "overrides": [f"--config.fake.ap50={values}"]})
  sweep = write_sweep(tmp_path / "t1.py", runs, rows=("identical", "k-means"),
                      cols=("Baseline", "Opt"))
  root = tmp_path / "out"
  assert run.run([sweep, f"--workdir_root={root}", "--seeds=2", TRAINER]) == 0
  capsys.readouterr()   # the runner's progress lines
  assert claims.run([sweep, f"--workdir_root={root}"]) == 0
  text = (root / "claims.md").read_text()
  # identical: +20, +12 -> +16 ± 5.66; k-means: +6, +4 -> +5 ± 1.41; Opt spread 31 - 30.5.
  assert "| identical | +16.00 ± 5.66 | [-34.82, +66.82] | holds |" in text
  assert "| k-means | +5.00 ± 1.41 | [-7.71, +17.71] | holds |" in text
  assert "| Opt | 31.00 | 31.00 | 0.00 |" in text
  # The fake trainer logs the same anchors for every run of a seed -> IoU 1.
  assert "| identical | k-means | 0.00 ± 0.00 | 1.000 ± 0.000 |" in text
  # The terminal gets the same tables aligned, then where claims.md is.
  lines = capsys.readouterr().out.splitlines()
  assert lines[:2] == ["Claims check: Test sweep", "=" * len("Claims check: Test sweep")]
  assert lines[-1] == f"wrote {root / 'claims.md'}"
  assert "  Init       Opt − Baseline           95 % CI  verdict" in lines
  assert "  identical   +16.00 ± 5.66  [-34.82, +66.82]  holds" in lines
  assert "  Opt           31.00    31.00                0.00" in lines
  assert claims.run([sweep, f"--workdir_root={root}", "--json"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert out["claims_md"] == str(root / "claims.md")
  assert out["gains"]["identical"]["diffs"] == pytest.approx([20.0, 12.0])
  assert out["gains"]["identical"]["holds"] is True
  assert out["spreads"]["Opt"]["spread"] == pytest.approx(0.0)
  assert out["pairs"]["identical / k-means"] == pytest.approx([1.0, 1.0])


def test_cli_rejects_a_sweep_that_is_not_table1(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", [{"name": "a", "overrides": [], "row": "r",
                                            "col": "c"}])
  assert claims.run([sweep, f"--workdir_root={tmp_path}"]) == 2
  assert "not a Table 1 sweep" in capsys.readouterr().err


def test_train_metrics_come_from_the_last_logged_window(tmp_path):
  def workdir(name, rows, counts):
    path = tmp_path / name
    path.mkdir()
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    anchors = [{"step": 0, "counts": [0, 0]}, {"step": 10, "counts": counts}]
    (path / "anchors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in anchors))
    (path / "config.json").write_text(json.dumps({"train": {"batch_size": 2},
                                                     "loss": {"class_scale": 2.0}}))
    return str(path)
  base = workdir("b", [{"step": 1, "avg_iou": 0.1, "cls": 9.0},
                       {"step": 2, "avg_iou": 0.30, "cls": 4.0}, {"step": 2, "eval": 1}],
                 counts=[20, 12])
  opt = workdir("o", [{"step": 2, "avg_iou": 0.45, "cls": 3.0}], counts=[25, 15])
  recs = [results.Record(name="x", seed=0, status=wd.STATUS_DONE, workdir=w, row="identical",
                         col=col, metrics={"AP50": 0.1}) for w, col in ((base, "Baseline"),
                                                                        (opt, "Opt"))]
  assert claims.last_train_metric(base, "avg_iou") == pytest.approx(0.30)
  assert claims.last_train_metric(base, "missing") is None
  # 32 boxes assigned over a 10-step window = 3.2 per step; cls 4.0 per image at
  # class_scale 2 x 2 images per step -> 4 nats over 3.2 boxes = 1.25 per box.
  # Opt: 3 / 2 x 2 / 4 = 0.75.
  assert claims.class_nats_per_box(base) == pytest.approx(1.25)
  sweep = {"table": {"rows": ["identical"], "cols": ["Baseline", "Opt"]},
           "runs": [{"row": "identical", "col": "Baseline"}, {"row": "identical", "col": "Opt"}]}
  out = claims.check(sweep, recs, seeds=[0], min_gain=1.0, max_spread=0.5, max_side_diff=0.05)
  text = claims.render(out, command="cmd", title="T")
  assert "| identical | 0.300 | 0.450 | +0.150 | 1.250 | 0.750 |" in text
  assert out["robust"] is None          # one seed: no verdict
