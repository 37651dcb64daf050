"""prep-targets: writes enhancement targets for every image of a folder.

    prep-targets --input_dir I --output_dir O --operator local_laplacian \\
        [--gin_bindings "llf_params.preset = 'tone_mapping'"] [--workers 2]
    prep-targets ... --runner DirectRunner [--beam_options "--flag=value ..."]
    prep-targets ... --operator nonlocal_dehaze [--airlight_csv known.csv]

Every image of I becomes `O/<operator>/<name>.png` (16-bit PNG); see
`data_prep.targets.prepare_targets` for the resume and skip rules. The flags
live here (library code reads no flags); spawned workers import only
`data_prep.targets`. Without --runner the local process pool runs the job;
with it, the same job runs as an Apache Beam pipeline
(`data_prep.beam_pipeline`, the `beam` extra; docs/scaling.md).
"""

from __future__ import annotations

import logging as std_logging
import os
from typing import List

from absl import flags

from data_prep import airlight_table
from data_prep import beam_pipeline
from data_prep import targets
from nima_enhance import config
from nima_enhance.bin import common

flags.DEFINE_string("input_dir", None, "Folder of input images.")
flags.DEFINE_string("output_dir", None, "Targets go to <output_dir>/<operator>/.")
flags.DEFINE_enum("operator", None, list(targets.OPERATORS), "Target operator.")
flags.DEFINE_integer("workers", max(1, (os.cpu_count() or 1) - 1),
                     "Worker processes (spawned).")
flags.DEFINE_integer("max_side", None, "Resize so the longest side is at "
                     "most this before the operator (the paper: 640).")
flags.DEFINE_string("runner", None, "Run as an Apache Beam pipeline on this "
                    "runner (DirectRunner, DataflowRunner, FlinkRunner, "
                    "SparkRunner, ...); default: the local process pool.")
flags.DEFINE_multi_string("beam_options", [], "Beam pipeline options for "
                          "--runner, e.g. \"--project=P --region=R "
                          "--temp_location=gs://B/tmp\" (repeatable).")
flags.DEFINE_string("airlight_csv", None, "nonlocal_dehaze: CSV of known "
                    "air-lights, rows name,r,g,b (the input's file name or "
                    "stem; r, g, b in (0, 1], the image's own values); they "
                    "replace the estimate for those images. Each run records "
                    "the air-lights it used in <output_dir>/nonlocal_dehaze/"
                    "airlight.csv (same format).")
common.define_gin_flags()
common.define_max_pixels_flag()
flags.mark_flags_as_required(["input_dir", "output_dir", "operator"])
FLAGS = flags.FLAGS


def main(argv: List[str]) -> None:
  if FLAGS.workers < 1:
    raise common.UsageError("--workers must be >= 1")
  if FLAGS.max_side is not None and FLAGS.max_side < 1:
    raise common.UsageError("--max_side must be >= 1")
  if FLAGS.beam_options and not FLAGS.runner:
    raise common.UsageError("--beam_options needs --runner")
  if FLAGS.airlight_csv and FLAGS.operator != "nonlocal_dehaze":
    raise common.UsageError("--airlight_csv is for --operator "
                            "nonlocal_dehaze")
  if FLAGS.runner:
    # Checked first: without the extra this is the one line the user sees.
    beam_pipeline.require_beam()
  if "://" not in FLAGS.output_dir:
    common.check_output_dir(FLAGS.output_dir)  # before any work
  airlights = (airlight_table.read_table(FLAGS.airlight_csv)
               if FLAGS.airlight_csv else None)
  config.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
  try:
    params = targets.operator_params(FLAGS.operator)
  except ValueError as err:
    raise config.ConfigError(str(err)) from None
  if FLAGS.runner:
    # Beam logs every worker start and stop at INFO; keep the summary readable.
    std_logging.getLogger("apache_beam").setLevel(std_logging.WARNING)
    result = beam_pipeline.prepare_targets_beam(
        FLAGS.input_dir, FLAGS.output_dir, FLAGS.operator, FLAGS.runner,
        FLAGS.beam_options, workers=FLAGS.workers, max_side=FLAGS.max_side,
        params=params, airlights=airlights)
  else:
    result = targets.prepare_targets(
        FLAGS.input_dir, FLAGS.output_dir, FLAGS.operator,
        workers=FLAGS.workers, max_side=FLAGS.max_side, params=params,
        airlights=airlights)
  # Exit codes as every binary: 1 when files were skipped, 2 when nothing
  # could be made (targets already there count as made).
  if result and not result["total"] and not result["failed"]:
    raise common.nothing_processed(f"no images in {FLAGS.input_dir}")
  if result and result["failed"]:
    if not result["written"] and not result["skipped"]:
      raise common.nothing_processed(
          f"all {result['failed']} inputs of {FLAGS.input_dir} skipped "
          "(reasons above)")
    common.note_skipped(result["failed"], "the 'skipped unreadable' lines")


def run() -> None:
  """Console entry point `prep-targets`."""
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
