"""tools/import_graph.py: the project's imports run downward by layer.

The first test is the regression guard: an upward import, an import cycle or
a function-level import of the project (binaries included) fails CI here. The others
build small trees with each fault and check the tool names it.
"""

import importlib.util
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SPEC = importlib.util.spec_from_file_location(
    "import_graph", os.path.join(ROOT, "tools", "import_graph.py"))
import_graph = importlib.util.module_from_spec(_SPEC)
sys.modules["import_graph"] = import_graph  # dataclasses look it up
_SPEC.loader.exec_module(import_graph)


def test_the_project_follows_the_import_rule(capsys):
  assert import_graph.main(["--root", ROOT, "--modules"]) == 0, (
      capsys.readouterr().out)
  out = capsys.readouterr().out
  # Every layer is listed, and the graph names real edges.
  for name, _ in import_graph.LAYERS:
    assert f" {name} " in out
  assert "[train] train.loop -> " in out and "train.step" in out
  assert "[data] data.image_files -> -" in out  # the bottom of the data layer
  # The three former re-export shims are gone.
  modules = import_graph.module_names(ROOT)
  for shim in ("nima_enhance.enhancement", "nima_enhance.sweep",
               "nima_enhance.enhance_report"):
    assert shim not in modules


def _tree(root, files):
  for rel, text in files.items():
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(textwrap.dedent(text))
  for package in ("nima_enhance", "nima_enhance/data", "nima_enhance/train",
                  "nima_enhance/bin"):
    init = os.path.join(root, package, "__init__.py")
    if not os.path.exists(init):
      os.makedirs(os.path.dirname(init), exist_ok=True)
      open(init, "w", encoding="utf-8").close()
  return str(root)



def test_architecture_doc_shows_the_current_graph(capsys):
  """docs/architecture.md quotes the tool's layer summary; it must be current."""
  import_graph.main(["--root", ROOT])
  summary = "\n".join(capsys.readouterr().out.splitlines()[:9])
  with open(os.path.join(ROOT, "docs", "architecture.md"),
            encoding="utf-8") as f:
    doc = f.read()
  assert summary in doc, (
      "docs/architecture.md's import graph is stale; paste the first lines "
      "of `python tools/import_graph.py`:\n" + summary)

def test_a_clean_tree_passes(tmp_path):
  root = _tree(tmp_path, {
      "nima_enhance/data/a.py": "import os\n",
      "nima_enhance/train/loop.py": "from nima_enhance.data import a\n",
      "nima_enhance/bin/run.py": "from nima_enhance.train import loop\n",
  })
  problems, graph = import_graph.check(root)
  assert problems == []
  assert graph["edges"]["nima_enhance.train.loop"] == {"nima_enhance.data.a"}


def test_upward_import_is_named(tmp_path):
  root = _tree(tmp_path, {
      "nima_enhance/data/a.py": "from nima_enhance.train import loop\n",
      "nima_enhance/train/loop.py": "import os\n",
  })
  problems, _ = import_graph.check(root)
  assert len(problems) == 1
  assert "nima_enhance/data/a.py:1" in problems[0]
  assert "imports nima_enhance.train.loop (train), an upper layer" in (
      problems[0])


def test_function_level_import_of_the_project_is_named(tmp_path):
  root = _tree(tmp_path, {
      "nima_enhance/data/a.py": "import os\n",
      "nima_enhance/train/loop.py": """
          import os


          def run():
            import numpy  # another package: listed, not refused
            from nima_enhance.data import a
            return a
          """,
  })
  problems, graph = import_graph.check(root)
  assert len(problems) == 1
  assert "nima_enhance/train/loop.py:7: function-level import of " \
      "nima_enhance.data.a" in problems[0]
  assert [i.target for i in graph["foreign"]] == ["numpy"]


def test_cycle_within_a_layer_is_named(tmp_path):
  root = _tree(tmp_path, {
      "nima_enhance/data/a.py": "from nima_enhance.data import b\n",
      "nima_enhance/data/b.py": "from . import a\n",  # relative imports too
  })
  problems, _ = import_graph.check(root)
  assert problems == [
      "import cycle: nima_enhance.data.a <-> nima_enhance.data.b"]


def test_module_outside_every_layer_is_named(tmp_path):
  root = _tree(tmp_path, {"other/x.py": "import os\n",  # not scanned
                          "nima_enhance/data/a.py": "import os\n",
                          "nima_enhance/newthing.py": "import os\n"})
  problems, _ = import_graph.check(root)
  assert len(problems) == 1
  assert "module nima_enhance.newthing is in no layer" in problems[0]


def test_a_binary_importing_lazily_is_named(tmp_path):
  root = _tree(tmp_path, {
      "nima_enhance/train/loop.py": "import os\n",
      "nima_enhance/bin/run.py": """
          def main():
            from nima_enhance.train import loop
          """,
  })
  problems, _ = import_graph.check(root)
  assert len(problems) == 1
  assert "nima_enhance/bin/run.py:3: function-level import of " in problems[0]
