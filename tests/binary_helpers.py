"""Running the console scripts as a user does, for the end-to-end tests.

One definition of "run `nima_enhance.bin.<module>` in a fresh interpreter"
and of the one-line-error contract (exit 2, no traceback, the last line of
stderr says `error:` and names the problem), shared by the binary tests.
"""

import os
import subprocess
import sys
from typing import Dict, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CPU only and TF's C++ log quiet, so stderr holds what the binary says.
ENV = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="",
           TF_CPP_MIN_LOG_LEVEL="2")


def run_binary(module: str, *args: str, timeout: int = 300,
               cwd: str = REPO, env: Optional[Dict[str, str]] = None
              ) -> subprocess.CompletedProcess:
  """`python -m nima_enhance.bin.<module> args...`, output captured as text.

  `env`: variables set on top of ENV.
  """
  return subprocess.run([sys.executable, "-m", f"nima_enhance.bin.{module}",
                         *args], capture_output=True, text=True,
                        timeout=timeout, env=dict(ENV, **(env or {})),
                        cwd=cwd, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess,
                          fragment: str) -> None:
  """Exit 2 and a last stderr line `... error: ...` containing `fragment`."""
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert "error:" in last and fragment in last, last
