"""Apache Beam runners from a runner name and standard pipeline flags.

Shared by `prep-targets --runner` (data_prep/beam_pipeline.py) and
`build-tfds --runner` (TFDS's Beam support). `apache-beam` is the optional
`beam` extra; without it, asking for a runner ends with the install command.
"""

from __future__ import annotations

import shlex
from typing import List, Sequence

from nima_enhance import config

INSTALL_HINT = 'pip install -e ".[beam]"'


def beam_installed() -> bool:
  """Whether apache_beam imports (the `beam` extra)."""
  try:
    import apache_beam  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def require_beam():
  """Imports apache_beam; raises ConfigError with the install command if absent."""
  try:
    import apache_beam  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise config.ConfigError(
        f"--runner needs Apache Beam, which is not installed: "
        f"{INSTALL_HINT}") from None
  return apache_beam


def pipeline_options(runner: str, beam_options: Sequence[str] = (),
                     workers: int = 1):
  """The Beam runner and PipelineOptions from --runner and --beam_options.

  "DirectRunner" runs on Beam's Python engine (FnApiRunner, the DirectRunner's
  own fallback), never on Prism: the DirectRunner would first download a
  Prism binary from GitHub, which offline machines and tests cannot do (ask
  for `--runner PrismRunner` explicitly to use it).

  Args:
    runner: a Beam runner name (DirectRunner, DataflowRunner, FlinkRunner,
      SparkRunner, PortableRunner, ...).
    beam_options: standard Beam pipeline flags, each string split like a
      shell line ("--project=p --region=r" or one flag per string).
    workers: for the DirectRunner only, when `--direct_num_workers` is not
      given: that many worker processes (the local pool's --workers).

  Returns:
    (runner object or None to let the options name it, PipelineOptions).

  Raises:
    config.ConfigError: apache-beam missing or an unknown runner.
  """
  require_beam()
  from apache_beam.options import pipeline_options as po  # pylint: disable=g-import-not-at-top
  from apache_beam.runners import runner as runner_lib  # pylint: disable=g-import-not-at-top
  argv: List[str] = []
  for text in beam_options:
    argv.extend(shlex.split(text))
  if runner != "DirectRunner":
    try:
      runner_lib.create_runner(runner)
    except (ValueError, ImportError) as err:
      raise config.ConfigError(f"--runner {runner}: "
                               f"{str(err).splitlines()[0]}") from None
    return None, po.PipelineOptions(argv + [f"--runner={runner}"])
  if workers > 1 and not any(a.startswith("--direct_num_workers")
                             for a in argv):
    argv += [f"--direct_num_workers={workers}",
             "--direct_running_mode=multi_processing"]
  from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=g-import-not-at-top
  return fn_runner.FnApiRunner(), po.PipelineOptions(argv)
