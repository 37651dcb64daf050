"""prep-targets on Apache Beam: the local pool's job on any Beam runner.

The pipeline is `Create(tasks) | Reshuffle | process_image | results`: the
launcher plans (lists the inputs, skips finished outputs, checks the recorded
settings) with `targets.plan_targets`, every worker runs the very function the
local pool runs (`targets.process_image`: same operators, parameters, 16-bit
PNGs written atomically, an existing output left alone, so retried bundles
and reruns are harmless), and the launcher reads the per-image outcomes back
and reports them with `targets.summarize`. Inputs and outputs go through
tf.io.gfile, so a runner's workers read and write gs:// directly.

`apache-beam` is the optional `beam` extra (`pip install -e ".[beam]"`);
docs/scaling.md gives the DirectRunner, Dataflow, Flink and Spark commands.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf

from data_prep import targets
from nima_enhance import config

INSTALL_HINT = 'pip install -e ".[beam]"'
_RESULTS_DIR = ".prep-targets-beam"


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
  from apache_beam.runners import runner as beam_runner  # pylint: disable=g-import-not-at-top
  argv: List[str] = []
  for text in beam_options:
    argv.extend(shlex.split(text))
  if runner != "DirectRunner":
    try:
      beam_runner.create_runner(runner)
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


def _run_pipeline(tasks: List[targets.TargetTask], results_dir: str,
                  runner, options) -> List[Tuple[str, str, Optional[str]]]:
  """Runs process_image over tasks on the runner; returns the outcomes."""
  beam = require_beam()

  class ProcessImage(beam.DoFn):
    """targets.process_image with Beam counters (shown by Dataflow's UI)."""

    def __init__(self):
      super().__init__()
      self.counters = {}

    def setup(self):
      self.counters = {status: beam.metrics.Metrics.counter("prep_targets",
                                                            status)
                       for status in (targets.WRITTEN, targets.DONE,
                                      targets.FAILED)}

    def process(self, task):
      path, status, reason = targets.process_image(task)
      self.counters[status].inc()
      yield (path, status, reason)

  results_file = os.path.join(results_dir, "outcomes.json")

  def write_outcomes(outcomes):
    # Through tf.io.gfile like the targets (Beam's own file systems know
    # neither ram:// nor every TF file system).
    targets.write_bytes(results_file,
                        json.dumps(sorted(outcomes)).encode("utf-8"))

  with beam.Pipeline(runner=runner, options=options) as pipeline:
    _ = (pipeline
         | "Tasks" >> beam.Create(tasks)
         # One image per element is seconds of work: spread them evenly.
         | "Spread" >> beam.Reshuffle()
         | "Targets" >> beam.ParDo(ProcessImage())
         # One small record per image (path, outcome, reason): 5,000 of them
         # are a few hundred kB, gathered on one worker and written once.
         | "Gather" >> beam.combiners.ToList()
         | "Report" >> beam.Map(write_outcomes))
  with tf.io.gfile.GFile(results_file, "r") as f:
    return [tuple(outcome) for outcome in json.loads(f.read())]


def _remove_results(results_dir: str) -> None:
  """Deletes the run's outcome files and their folders once empty."""
  for path in tf.io.gfile.glob(os.path.join(results_dir, "*")):
    tf.io.gfile.remove(path)
  for folder in (results_dir, os.path.dirname(results_dir)):
    try:
      if not tf.io.gfile.listdir(folder):
        tf.io.gfile.rmtree(folder)
    except tf.errors.OpError:
      pass  # object stores (gs://, ram://) have no folders to remove


def prepare_targets_beam(input_dir: str, output_dir: str, operator: str,
                         runner: str = "DirectRunner",
                         beam_options: Sequence[str] = (),
                         workers: int = 1, max_side: Optional[int] = None,
                         params: Optional[dict] = None,
                         log: Callable[[str], None] = print
                         ) -> Dict[str, object]:
  """`targets.prepare_targets` as an Apache Beam pipeline on `runner`.

  Args:
    input_dir, output_dir, operator, max_side, params, log: as for
      `targets.prepare_targets`; remote runners need paths their workers
      can reach (gs://...).
    runner: Beam runner name.
    beam_options: standard Beam pipeline flags (see `pipeline_options`).
    workers: DirectRunner worker processes when beam_options name none.

  Returns:
    the same dictionary as `targets.prepare_targets`.

  Raises:
    config.ConfigError: apache-beam missing, or outputs with other settings.
    FileNotFoundError / NotADirectoryError: input_dir is missing.
  """
  beam_runner, options = pipeline_options(runner, beam_options, workers)
  plan = targets.plan_targets(input_dir, output_dir, operator, max_side,
                              params)
  targets.log_plan(plan, log)
  outcomes: List[Tuple[str, str, Optional[str]]] = []
  if plan.tasks:
    # Outcomes travel through files beside the outputs: every runner's
    # workers can write where the targets go, and the launcher reads them.
    results_dir = os.path.join(plan.out_dir, _RESULTS_DIR,
                               os.urandom(6).hex())
    try:
      outcomes = _run_pipeline(plan.tasks, results_dir, beam_runner, options)
    finally:
      _remove_results(results_dir)
  return targets.summarize(plan, outcomes, log)
