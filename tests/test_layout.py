"""The package layout the README promises: its tree, its import rule, no cycles.

The README's "Codebase organisation" section holds a tree of every module and a numbered
import rule (each layer may import the layers listed before it and its own package); this
file parses both, so the README is the rule and this test enforces it.
"""
import ast
import os
import re

import pytest

from tests import REPO

PACKAGE = "anchor_jax"
SECTION = "## Codebase organisation"


def _readme_section() -> str:
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    text = f.read()
  start = text.index(SECTION)
  end = text.find("\n## ", start + len(SECTION))
  return text[start:end if end > 0 else None]


def readme_tree() -> set[str]:
  """Paths named by the first fenced block of the section: entries indented two spaces per
  level, folders ending in '/', each followed by its description."""
  block = _readme_section().split("```")[1]
  paths, stack = set(), []
  for line in block.splitlines()[1:]:
    if not line.strip():
      continue
    indent = (len(line) - len(line.lstrip(" "))) // 2
    name = line.split()[0]
    del stack[indent:]
    path = "/".join(stack + [name.rstrip("/")])
    paths.add(path + ("/" if name.endswith("/") else ""))
    if name.endswith("/"):
      stack.append(name.rstrip("/"))
  return paths


def readme_layers() -> list[list[str]]:
  """The numbered import rule: [[module or package names of layer 1], [layer 2], ...]."""
  layers = []
  for line in _readme_section().splitlines():
    match = re.match(r"^\d+\.\s+(.*)$", line.strip())
    if match:
      layers.append(re.findall(r"`([\w.]+)`", match.group(1).split("--")[0]))
  return layers


def package_modules() -> dict[str, str]:
  """module name -> file path of every module of the package."""
  out = {}
  for root, _, files in os.walk(os.path.join(REPO, PACKAGE)):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        out[rel.removesuffix(".__init__")] = path
  return out


def imports(path: str, module: str):
  """(module-level anchor_jax imports, [(line, text) of imports inside functions])."""
  with open(path, encoding="utf-8") as f:
    source = f.read()
  tree = ast.parse(source)
  lines = source.splitlines()
  top, nested = set(), []

  def names(node):
    if isinstance(node, ast.Import):
      return [a.name for a in node.names]
    base = node.module or ""
    if node.level:   # relative import
      base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names] + [base]

  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      for inner in ast.walk(node):
        if isinstance(inner, (ast.Import, ast.ImportFrom)):
          nested.append((inner.lineno, lines[inner.lineno - 1].strip(), names(inner)))
  nested_lines = {n[0] for n in nested}
  for node in ast.walk(tree):
    if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno not in nested_lines:
      top.update(n for n in names(node) if n == PACKAGE or n.startswith(PACKAGE + "."))
  return top, nested


def resolve(name: str, modules) -> str | None:
  """The package module an imported dotted name refers to (``a.b.func`` -> ``a.b``)."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name or None


def layer_of(module: str, layers) -> int:
  for i, members in enumerate(layers):
    for member in members:
      full = f"{PACKAGE}.{member}"
      if module == full or module.startswith(full + "."):
        return i
  raise AssertionError(f"{module} is in no layer of the README's import rule")


def _group(module: str) -> str:
  """The sub-package of a module (``anchor_jax.data.pipeline`` -> ``anchor_jax.data``)."""
  parts = module.split(".")
  return ".".join(parts[:2])


@pytest.fixture(scope="module")
def graph():
  modules = package_modules()
  edges = {}
  nested = {}
  for module, path in modules.items():
    top, inner = imports(path, module)
    edges[module] = {r for r in (resolve(n, modules) for n in top) if r and r != module}
    nested[module] = inner
  return modules, edges, nested


def test_readme_tree_names_every_module_and_nothing_else():
  tree = readme_tree()
  listed = {p for p in tree if p.startswith(PACKAGE + "/") and p.endswith(".py")}
  actual = {os.path.relpath(p, REPO).replace(os.sep, "/")
            for p in package_modules().values()
            if os.path.basename(p) != "__init__.py"}
  assert sorted(actual - listed) == [], "modules missing from the README tree"
  assert sorted(listed - actual) == [], "README tree names modules that do not exist"
  missing = [p for p in tree if not os.path.exists(os.path.join(REPO, p.rstrip("/")))]
  assert missing == [], "README tree names paths that do not exist"


def test_imports_follow_the_readme_rule(graph):
  modules, edges, _ = graph
  layers = readme_layers()
  assert len(layers) >= 5, "the README's numbered import rule was not found"
  bad = []
  for module, deps in edges.items():
    if module == PACKAGE:    # the package's own (empty) __init__
      continue
    here = layer_of(module, layers)
    for dep in deps - {PACKAGE}:
      there = layer_of(dep, layers)
      if there >= here and not (there == here and _group(dep) == _group(module)):
        bad.append(f"{module} (layer {here + 1}) imports {dep} (layer {there + 1})")
  assert bad == []


def test_no_import_cycles(graph):
  _, edges, _ = graph
  state, stack, cycles = {}, [], []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for dep in sorted(edges.get(node, ())):
      if state.get(dep) == "open":
        cycles.append(stack[stack.index(dep):] + [dep])
      elif dep not in state:
        visit(dep)
    stack.pop()
    state[node] = "done"

  for node in sorted(edges):
    if node not in state:
      visit(node)
  assert cycles == []


def test_imports_inside_functions_are_commented_optional_dependencies(graph):
  _, _, nested = graph
  bad = []
  for module, found in nested.items():
    for line, text, names in found:
      ours = any(n == PACKAGE or n.startswith(PACKAGE + ".") for n in names)
      if ours or "#" not in text:
        bad.append(f"{module}:{line}: {text}")
  assert bad == []


def test_the_rule_parser_sees_a_violation(tmp_path):
  """The checks above would fail on a bad import: a hand-made module graph."""
  layers = [["errors"], ["core"], ["data", "model"]]
  assert layer_of("anchor_jax.core.box_ops", layers) == 1
  assert layer_of("anchor_jax.model.yolov2", layers) == layer_of("anchor_jax.data.pipeline",
                                                                 layers) == 2
  source = tmp_path / "m.py"
  source.write_text("import os\nfrom anchor_jax.data import pipeline\n\n"
                    "def f():\n  from anchor_jax.core import gt\n  import numpy\n")
  top, nested = imports(str(source), "anchor_jax.model.m")
  assert "anchor_jax.data.pipeline" in top and "anchor_jax.core.gt" not in top
  assert [n[1] for n in nested] == ["from anchor_jax.core import gt", "import numpy"]
