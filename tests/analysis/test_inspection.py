"""Tests for anchor_jax.inspect (CLI + library) and the inspect_anchors notebook, on a
workdir made by really training configs/synthetic.py:tiny for its 4 steps."""
import json
import os
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from anchor_jax import workdir as workdir_lib
from anchor_jax.analysis import inspection as inspect_lib
from anchor_jax.core import anchors as anchors_lib
from anchor_jax.data import pipeline as input_pipeline
from anchor_jax.tools import inspect as inspect_tool
from anchor_jax.training import train
from tests import train_util

NOTEBOOK = os.path.join(train_util.REPO, "experiments", "notebooks", "inspect_anchors.ipynb")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 5000    # a blank figure is far smaller than one with a density and curves.
KMEANS_IMAGES = 200     # fewer boxes than the default 2000 keep the test short.
CLI_IMAGES = 150        # --boxes for the CLI run, to check the flag is used.


def _jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "anchor_jax.inspect", *args],
                        cwd=train_util.REPO, env=train_util.subprocess_env(),
                        capture_output=True, text=True, timeout=300, check=False)


def _python3_kernel():
  """'python3', installing the venv's ipykernel spec if Jupyter finds none."""
  from jupyter_client.kernelspec import KernelSpecManager
  if "python3" not in KernelSpecManager().find_kernel_specs():
    from ipykernel import kernelspec
    kernelspec.install(user=False, prefix=sys.prefix)
  return "python3"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A finished 4-step tiny run (config.json, metrics/anchors/eval.jsonl, checkpoints)."""
  config = train_util.tiny_config()
  config.anchors.kmeans_images = KMEANS_IMAGES
  path = str(tmp_path_factory.mktemp("tiny_run"))
  train.train_and_evaluate(config, path)
  return path


@pytest.mark.slow
def test_cli_writes_pngs_and_summary(workdir, tmp_path):
  out = str(tmp_path / "plots")
  res = _cli(f"--workdir={workdir}", f"--out={out}", f"--num_images={CLI_IMAGES}", "--json")
  assert res.returncode == 0, res.stderr[-3000:]
  summary = json.loads(res.stdout)
  for name in inspect_lib.PLOT_FILES.values():
    with open(os.path.join(out, name), "rb") as f:
      data = f.read()
    assert data.startswith(PNG_MAGIC) and len(data) > MIN_PNG_BYTES, name
  assert sorted(summary["plots"].values()) == sorted(
      os.path.join(out, n) for n in inspect_lib.PLOT_FILES.values())

  lines = _jsonl(os.path.join(workdir, "anchors.jsonl"))
  assert summary["step"] == lines[-1]["step"] == 4
  assert summary["learned_anchors_px"] == lines[-1]["anchors_px"]
  assert summary["initial_anchors_px"] == lines[0]["anchors_px"]

  # The same boxes, read independently of inspect: first CLI_IMAGES training images.
  config = inspect_lib.load_run(workdir).config
  boxes = input_pipeline.build_dataset(config, "train").boxes_wh(
      CLI_IMAGES, image_size=config.input.image_size)
  assert summary["dataset"]["num_boxes"] == len(boxes)
  kmeans = anchors_lib.kmeans_iou(boxes, config.anchors.num, seed=config.seed)
  np.testing.assert_allclose(summary["kmeans_anchors_px"], kmeans, rtol=1e-12)
  for label, anchors_px in (("initial", lines[0]["anchors_px"]), ("kmeans", kmeans),
                            ("learned", lines[-1]["anchors_px"])):
    expected = anchors_lib.fit_stats(anchors_px, boxes)
    assert summary["fit"][label]["usage"] == expected["usage"], label
    assert summary["fit"][label]["num_boxes"] == expected["num_boxes"], label
    keys = ("mean_best_iou", "bpr", "bpr_ratio")
    np.testing.assert_allclose([summary["fit"][label][k] for k in keys],
                               [expected[k] for k in keys], rtol=1e-12)

  last_eval = _jsonl(os.path.join(workdir, "eval.jsonl"))[-1]
  assert summary["eval"]["step"] == last_eval["step"] == 4
  assert summary["eval"]["AP50"] == last_eval["AP50"]
  assert summary["eval"]["AP50_agnostic"] == last_eval["AP50_agnostic"]
  assert summary["eval"]["AP"] is None                      # voc07 has no COCO AP
  assert summary["eval"]["per_class"] == last_eval["per_class"]


@pytest.mark.slow
def test_notebook_executes_headless(workdir, monkeypatch):
  import nbclient
  monkeypatch.setenv("ANCHOR_JAX_WORKDIR", workdir)
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbclient.NotebookClient(nb, timeout=300, kernel_name=_python3_kernel(),
                          resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) == len(inspect_lib.PLOT_FILES)
  markdown = "\n".join(o["data"]["text/markdown"] for o in outputs
                       if "text/markdown" in o.get("data", {}))
  assert "| learned |" in markdown and "| rectangle |" in markdown   # fit and AP tables
  assert f"workdir: {workdir}" in "".join(o.get("text", "") for o in outputs)
  for name in inspect_lib.PLOT_FILES.values():
    assert os.path.getsize(os.path.join(workdir, workdir_lib.INSPECT, name)) > MIN_PNG_BYTES


@pytest.mark.slow
def test_bad_workdirs_exit_2(workdir, tmp_path, capsys):
  res = _cli(f"--workdir={tmp_path}")  # an empty directory, through the real CLI.
  assert res.returncode == 2 and res.stdout == ""
  assert "is not a training workdir" in res.stderr and "Traceback" not in res.stderr

  broken = tmp_path / "broken"
  shutil.copytree(workdir, broken, ignore=shutil.ignore_patterns("checkpoints", "inspect"))
  cases = [
      # A torn line is skipped (workdir.read_jsonl): a file of nothing else is empty.
      ("anchors.jsonl", '{"step": 0, "anchors_px": [[1, 2]\n', "anchors.jsonl: empty"),
      ("anchors.jsonl", "", "anchors.jsonl: empty"),
      ("anchors.jsonl", '{"step": 0, "anchors_px": [[1, 2]]}\n', "expected (5, 2)"),
      ("anchors.jsonl", '{"anchors_px": [[1, 2]]}\n', 'record 1 has no integer "step"'),
      ("config.json", '{"seed": 0}', "no key 'dataset.name'"),
      ("config.json", '{"seed": 0', "not valid JSON"),
      ("metrics.jsonl", '{"loss": 1.0}\n', 'metrics.jsonl: record 1 has no integer "step"'),
  ]
  for name, text, message in cases:
    original = (broken / name).read_text()
    (broken / name).write_text(text)
    assert inspect_tool.run([f"--workdir={broken}"]) == 2, name
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, (name, err)
    (broken / name).write_text(original)
  # A torn last line (a run killed mid-write) is skipped with a warning, nothing else.
  for name in ("anchors.jsonl", "metrics.jsonl", "eval.jsonl"):
    with open(broken / name, "a") as f:
      f.write('{"step": 99, "lo')
  assert inspect_tool.run([f"--workdir={broken}", f"--out={tmp_path / 'out'}", "--json"]) == 0
  summary = json.loads(capsys.readouterr().out)
  with open(os.path.join(workdir, "anchors.jsonl")) as f:
    assert summary["step"] == json.loads(f.read().splitlines()[-1])["step"]
  os.remove(broken / "metrics.jsonl")
  assert inspect_tool.run([f"--workdir={broken}"]) == 2
  assert "missing metrics.jsonl" in capsys.readouterr().err
  assert inspect_tool.run([f'--workdir={tmp_path / "nope"}']) == 2
  assert "no such directory" in capsys.readouterr().err


def test_notebook_is_saved_without_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code and all(not c.outputs and c.execution_count is None for c in code)
  assert any("ANCHOR_JAX_WORKDIR" in c.source for c in code)


def test_metric_series_of_a_resumed_run_keeps_the_later_line_per_step():
  metrics = [{"step": 10, "loss": 5.0}, {"step": 20, "loss": 4.0}, {"step": 30, "loss": 3.0},
             {"step": 20, "loss": 3.9}, {"step": 30, "loss": 2.9}, {"step": 40, "lr": 1e-3}]
  run = inspect_lib.Run(workdir="", config=None, metrics=metrics, anchor_log=[], evals=[])
  steps, values = inspect_lib.metric_series(run, "loss")
  assert steps.tolist() == [10, 20, 30] and values.tolist() == [5.0, 3.9, 2.9]


@pytest.mark.slow
def test_text_report_shows_the_json_numbers_formatted(workdir, tmp_path, capsys):
  out = str(tmp_path / "plots")
  assert inspect_tool.run([f"--workdir={workdir}", f"--out={out}", "--json"]) == 0
  summary = json.loads(capsys.readouterr().out)
  assert inspect_tool.run([f"--workdir={workdir}", f"--out={out}"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == f"{workdir}: synthetic:mixed at 64 px, step 4 of 4"
  assert lines[2] == (f"{summary['dataset']['num_boxes']} GT boxes of the first "
                      f"{KMEANS_IMAGES} training images")
  # Anchor rows: '#', then per set (initial, k-means, learned) 'w x h' with one decimal and
  # its usage, each set sorted by area.
  keys = ("initial", "kmeans", "learned")
  header = next(i for i, line in enumerate(lines) if line.startswith("  #  initial (identical)"))
  for rank in range(5):
    want = [str(rank + 1)]
    for key in keys:
      px = np.asarray(summary[f"{key}_anchors_px"])
      i = np.lexsort((px[:, 0], px[:, 0] * px[:, 1]))[rank]
      want += [f"{px[i, 0]:.1f}", "x", f"{px[i, 1]:.1f}", str(summary["fit"][key]["usage"][i])]
    assert lines[header + 2 + rank].split() == want
  fit = {line.split("  ")[1]: line.split()[-3:] for line in lines
         if line.startswith(("  mean best IoU", "  BPR"))}
  assert fit["mean best IoU"] == [f'{summary["fit"][k]["mean_best_iou"]:.3f}' for k in keys]
  assert fit["BPR, IoU >= 0.5 (%)"] == [f'{100 * summary["fit"][k]["bpr"]:.1f}' for k in keys]
  assert fit["BPR, YOLOv5 ratio < 4 (%)"] == [
      f'{100 * summary["fit"][k]["bpr_ratio"]:.1f}' for k in keys]
  ev = summary["eval"]
  assert "AP (voc07, step 4, eval split): 16 images, 48 GT boxes, " in "\n".join(lines)
  assert f'  AP50 (%)                 {100 * ev["AP50"]:.2f}' in lines
  assert f'  class-agnostic AP50 (%)  {100 * ev["AP50_agnostic"]:.2f}' in lines
  for name, ap in ev["per_class"].items():
    assert [name, f"{100 * ap:.2f}"] in [line.split() for line in lines], name
  assert f'  density       {summary["plots"]["density"]}' in lines


@pytest.mark.slow
def test_figures_have_pixel_ticks_titles_and_legends_off_the_data(workdir):
  from tests.analysis.test_plots import assert_legend_off_the_axes, visible_ticks
  run = inspect_lib.load_run(workdir)
  boxes = inspect_lib.gt_boxes(run.config)
  sets = inspect_lib.anchor_sets(run, boxes)
  figures = {"density": inspect_lib.density_figure(run, boxes, sets),
             "trajectories": inspect_lib.trajectories_figure(run, boxes,
                                                             kmeans_px=sets["kmeans"])}
  titles = {"density": f"{len(boxes)} GT boxes and anchors - synthetic:mixed at 64 px input, "
                       "step 4",
            "trajectories": "anchor trajectories - synthetic:mixed at 64 px input, steps 0-4 "
                            "(5 snapshots)"}
  for name, fig in figures.items():
    ax = fig.axes[0]
    title = (fig.axes[1] if name == "density" else ax).get_title()
    assert title == titles[name]
    for axis in (ax.xaxis, ax.yaxis):
      ticks = visible_ticks(axis)
      # Pixel values at powers of two (the tiny run spans > 4 octaves), labelled as such.
      assert len(ticks) >= 4, name
      for pos, label in ticks:
        assert label == f"{pos:g}" and np.log2(pos) == round(np.log2(pos)), (name, label)
      lo, hi = axis.get_view_interval()
      assert 2 ** np.ceil(np.log2(lo)) == ticks[0][0] and ticks[-1][0] * 2 > hi
    assert_legend_off_the_axes(ax)
    inspect_lib.plots.plt.close(fig)
