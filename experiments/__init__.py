"""Experiments on top of ``anchor_jax``: sweeps, their runner, benchmarks, notebooks.

  python -m experiments.run experiments/sweeps/table1.py:cpu --workdir_root=runs/table1

``experiments/sweeps/`` holds the sweep files (schema in its ``__init__``),
``run.py`` the runner (CLI), ``sweep_lib.py`` / ``launcher.py`` / ``results.py``
its parts: loading a sweep, launching and tracking training subprocesses, and
turning finished workdirs into ``results.csv`` and the paper-style ``results.md``.
"""
