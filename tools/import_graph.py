"""Prints what imports what in nima_enhance, by layer, and checks the rule.

The rule (docs/architecture.md, "Layers"): a module imports only from its own
layer or a lower one, module-level imports of the project form no cycle, and
no function imports a module of the project (a
function-level import is kept only for an optional heavy dependency, and
those are listed here for review). The check reads the source with `ast`;
nothing is imported, so it runs in a fraction of a second.

Usage (from the repository root):
  python tools/import_graph.py            # layers, edges by layer, verdict
  python tools/import_graph.py --modules  # and every module's own imports

Exit status 0 when the rule holds, 1 with one line per violation otherwise.
tests/test_import_graph.py runs it, so a regression fails CI.
"""

from __future__ import annotations

import argparse
import ast
import collections
import dataclasses
import os
import sys
from typing import Dict, List, Optional, Sequence, Set, Tuple

# The packages scanned (top-level names of the project's own code).
PACKAGES = ("nima_enhance", "data_prep")

# Layers, lowest first: (name, module prefixes). A module belongs to the layer
# of its longest matching prefix. Keep in step with docs/architecture.md.
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("config", ("nima_enhance.config", "nima_enhance.model_dir")),
    ("data", ("nima_enhance.data", "data_prep")),
    ("models", ("nima_enhance.models", "nima_enhance.metrics",
                "nima_enhance.losses")),
    ("train", ("nima_enhance.train",)),
    ("scoring/enhance", ("nima_enhance.scoring", "nima_enhance.enhance")),
    ("serving/demo", ("nima_enhance.serving", "nima_enhance.demo",
                      "nima_enhance.demo_report")),
    ("api", ("nima_enhance.api", "nima_enhance")),
    ("bin", ("nima_enhance.bin",)),
)
# Prefixes that name one module only, not the modules below it: the package
# root (its __init__ exports the public API) must not swallow a new top-level
# module, which has to be placed in a layer by hand.
EXACT = ("nima_enhance",)
# Where function-level imports of the project's own modules are allowed: none.
# (The binaries once imported lazily for a fast `--help`, but importing any
# binary imports `nima_enhance`, whose __init__ loads TensorFlow, so the lazy
# imports saved nothing.)
FUNCTION_IMPORTS_ALLOWED = ()


@dataclasses.dataclass(frozen=True)
class Import:
  """One import statement's target, as seen from `source`."""
  source: str
  target: str
  line: int
  in_function: bool


def module_names(root: str) -> Dict[str, str]:
  """Module name -> file path for every .py file of PACKAGES under root."""
  found = {}
  for package in PACKAGES:
    top = os.path.join(root, package)
    for folder, dirs, files in os.walk(top):
      dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
      for name in sorted(files):
        if not name.endswith(".py"):
          continue
        rel = os.path.relpath(os.path.join(folder, name), root)[:-3]
        parts = rel.split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        found[".".join(parts)] = os.path.join(folder, name)
  return found


def _resolve(node: ast.AST, source: str, is_package: bool,
             known: Set[str]) -> List[str]:
  """The project modules an import statement loads (empty if third-party)."""
  if isinstance(node, ast.Import):
    names = [a.name for a in node.names]
  else:
    base = node.module or ""
    if node.level:  # relative: from the source's package upward
      package = source.split(".")
      package = package if is_package else package[:-1]
      package = package[:len(package) - node.level + 1]
      base = ".".join(package + ([base] if base else []))
    names = []
    for alias in node.names:
      child = f"{base}.{alias.name}" if base else alias.name
      names.append(child if child in known else base)
  targets = []
  for name in names:
    # `import a.b.c` loads the longest known prefix (a.b.c, else a.b, ...).
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
      parts.pop()
    if parts:
      targets.append(".".join(parts))
  return targets


def collect(root: str) -> Tuple[List[Import], List[Import], Dict[str, str]]:
  """(own imports, third-party function-level imports, modules) under root."""
  modules = module_names(root)
  known = set(modules)
  own, foreign = [], []
  for source, path in modules.items():
    with open(path, "r", encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    in_function: Set[int] = set()
    for fn in ast.walk(tree):
      if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        in_function.update(id(n) for n in ast.walk(fn)
                           if isinstance(n, (ast.Import, ast.ImportFrom)))
    for node in ast.walk(tree):
      if not isinstance(node, (ast.Import, ast.ImportFrom)):
        continue
      nested = id(node) in in_function
      targets = _resolve(node, source, is_package, known)
      for target in targets:
        if target != source:
          own.append(Import(source, target, node.lineno, nested))
      if nested and not targets:
        name = (node.module if isinstance(node, ast.ImportFrom)
                else ", ".join(a.name for a in node.names))
        foreign.append(Import(source, name or ".", node.lineno, True))
  return own, foreign, modules


def layer_of(module: str) -> int:
  """Index in LAYERS of the longest prefix matching `module`."""
  best, best_len = -1, -1
  for index, (_, prefixes) in enumerate(LAYERS):
    for prefix in prefixes:
      below = module.startswith(prefix + ".") and prefix not in EXACT
      if (module == prefix or below) and len(prefix) > best_len:
        best, best_len = index, len(prefix)
  return best


def _cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  stack: List[str] = []
  on_stack: Set[str] = set()
  found: List[List[str]] = []

  def visit(node: str) -> None:
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for nxt in sorted(edges.get(node, ())):
      if nxt not in index:
        visit(nxt)
        low[node] = min(low[node], low[nxt])
      elif nxt in on_stack:
        low[node] = min(low[node], index[nxt])
    if low[node] == index[node]:
      component = []
      while True:
        top = stack.pop()
        on_stack.discard(top)
        component.append(top)
        if top == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(edges):
    if node not in index:
      visit(node)
  return found


def _is_ancestor(package: str, module: str) -> bool:
  return module.startswith(package + ".")


def check(root: str) -> Tuple[List[str], Dict[str, object]]:
  """(violations, graph) for the tree under root."""
  own, foreign, modules = collect(root)
  problems = []
  for module in sorted(modules):
    if layer_of(module) < 0:
      problems.append(f"{modules[module]}: module {module} is in no layer "
                      "(add it to LAYERS in tools/import_graph.py)")
  edges: Dict[str, Set[str]] = collections.defaultdict(set)
  cycle_edges: Dict[str, Set[str]] = collections.defaultdict(set)
  for imp in own:
    where = f"{os.path.relpath(modules[imp.source], root)}:{imp.line}"
    if imp.in_function:
      if not imp.source.startswith(FUNCTION_IMPORTS_ALLOWED):
        problems.append(f"{where}: function-level import of {imp.target} "
                        "(import it at the top; fix the layering if that "
                        "makes a cycle)")
      continue
    edges[imp.source].add(imp.target)
    # A package's __init__ re-exporting its own submodules is not a cycle
    # (Python loads the package before the submodule either way).
    if not _is_ancestor(imp.source, imp.target):
      cycle_edges[imp.source].add(imp.target)
    src_layer, dst_layer = layer_of(imp.source), layer_of(imp.target)
    if min(src_layer, dst_layer) < 0:
      continue  # reported above as in no layer
    if dst_layer > src_layer and not _is_ancestor(imp.target, imp.source):
      problems.append(f"{where}: {imp.source} ({LAYERS[src_layer][0]}) "
                      f"imports {imp.target} ({LAYERS[dst_layer][0]}), "
                      "an upper layer")
  for component in _cycles(cycle_edges):
    problems.append("import cycle: " + " <-> ".join(component))
  graph = {"modules": modules, "edges": edges, "foreign": foreign}
  return problems, graph


def render(graph: Dict[str, object], per_module: bool) -> str:
  """The layers with their modules, and which layers each layer imports."""
  modules: Dict[str, str] = graph["modules"]  # type: ignore[assignment]
  edges: Dict[str, Set[str]] = graph["edges"]  # type: ignore[assignment]
  foreign: List[Import] = graph["foreign"]  # type: ignore[assignment]
  lines = ["Layers (lowest first) and the layers each imports:"]
  by_layer: Dict[int, List[str]] = collections.defaultdict(list)
  for module in sorted(modules):
    by_layer[layer_of(module)].append(module)
  for index, (name, _) in enumerate(LAYERS):
    members = by_layer.get(index, [])
    uses: Dict[str, int] = collections.Counter()
    for module in members:
      for target in edges.get(module, ()):
        uses[LAYERS[layer_of(target)][0]] += 1
    used = ", ".join(f"{layer} ({count})" for layer, count in sorted(
        uses.items(), key=lambda kv: -layer_index(kv[0])))
    lines.append(f"  {index} {name:<16} {len(members):>2} modules -> "
                 f"{used or '(nothing of the project)'}")
  if per_module:
    lines.append("")
    lines.append("Module-level imports of the project, per module:")
    for module in sorted(modules, key=lambda m: (layer_of(m), m)):
      targets = sorted(edges.get(module, ()))
      short = [t.replace("nima_enhance.", "") for t in targets]
      lines.append(f"  [{LAYERS[layer_of(module)][0]}] "
                   f"{module.replace('nima_enhance.', '')} -> "
                   f"{', '.join(short) or '-'}")
  lines.append("")
  lines.append("Function-level imports of other packages (optional or heavy "
               "dependencies; review each):")
  for imp in sorted(foreign, key=lambda i: (i.source, i.line)):
    lines.append(f"  {imp.source}:{imp.line} {imp.target}")
  return "\n".join(lines)


def layer_index(name: str) -> int:
  return [layer for layer, _ in LAYERS].index(name)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default=os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), help="repository root")
  parser.add_argument("--modules", action="store_true",
                      help="also list every module's imports")
  args = parser.parse_args(argv)
  problems, graph = check(args.root)
  print(render(graph, args.modules))
  print("")
  if problems:
    for problem in problems:
      print(f"VIOLATION {problem}")
    print(f"{len(problems)} violation(s) of the import rule")
    return 1
  print("import rule holds: imports run downward, no cycles, no "
        "function-level import of the project")
  return 0


if __name__ == "__main__":
  sys.exit(main())
