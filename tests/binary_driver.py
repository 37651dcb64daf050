"""Runs one binary's main several times in one process (one TF start-up).

    python tests/binary_driver.py <module> '<json list of argv lists>'

Prints one JSON line: per case {"code", "last_line", "traceback"}. Flags,
gin and the skip counter are reset between cases, as a fresh process has
them. Used by the error-path tests, which would otherwise pay a process
start-up per case.
"""

import contextlib
import importlib
import io
import json
import sys
import traceback


def main():
  from absl import flags  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  from nima_enhance.bin import common  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(f"nima_enhance.bin.{sys.argv[1]}")
  results = []
  for argv in json.loads(sys.argv[2]):
    flags.FLAGS.unparse_flags()
    gin.clear_config()
    common._skipped.update(count=0, where=[])  # pylint: disable=protected-access
    sys.argv = [sys.argv[0]] + argv
    err = io.StringIO()
    code, tb = None, False
    with contextlib.redirect_stderr(err):
      try:
        module.run()
        code = 0
      except SystemExit as exit_:
        code = exit_.code
      except Exception:  # pylint: disable=broad-except
        traceback.print_exc()
        tb = True
    text = err.getvalue()
    lines = text.strip().splitlines()
    results.append({"code": code, "last_line": lines[-1] if lines else "",
                    "traceback": tb or "Traceback" in text})
  print(json.dumps(results))


if __name__ == "__main__":
  main()
