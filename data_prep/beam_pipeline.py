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
from typing import Callable, Dict, List, Optional, Sequence

import tensorflow as tf

from data_prep import targets
from nima_enhance.data import beam_runner

_RESULTS_DIR = ".prep-targets-beam"
# The runner set-up is shared with build-tfds (nima_enhance.data.beam_runner).
require_beam = beam_runner.require_beam
pipeline_options = beam_runner.pipeline_options


def _run_pipeline(tasks: List[targets.TargetTask], results_dir: str,
                  runner, options) -> List[targets.Outcome]:
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
      outcome = targets.process_image(task)
      self.counters[outcome[1]].inc()
      yield outcome

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
         # One small record per image (path, outcome, reason, air-light):
         # 5,000 of them are a few hundred kB, gathered on one worker and
         # written once.
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
                         log: Callable[[str], None] = print,
                         airlights: Optional[Dict[str, List[float]]] = None
                         ) -> Dict[str, object]:
  """`targets.prepare_targets` as an Apache Beam pipeline on `runner`.

  Args:
    input_dir, output_dir, operator, max_side, params, log, airlights: as
      for `targets.prepare_targets`; remote runners need paths their workers
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
  runner_object, options = pipeline_options(runner, beam_options, workers)
  plan = targets.plan_targets(input_dir, output_dir, operator, max_side,
                              params, airlights, log)
  targets.log_plan(plan, log)
  outcomes: List[targets.Outcome] = []
  if plan.tasks:
    # Outcomes travel through files beside the outputs: every runner's
    # workers can write where the targets go, and the launcher reads them.
    results_dir = os.path.join(plan.out_dir, _RESULTS_DIR,
                               os.urandom(6).hex())
    try:
      outcomes = _run_pipeline(plan.tasks, results_dir, runner_object,
                               options)
    finally:
      _remove_results(results_dir)
  targets.record_airlights(plan, outcomes)
  return targets.summarize(plan, outcomes, log)
