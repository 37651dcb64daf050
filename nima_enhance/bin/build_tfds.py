"""build-tfds: builds a TFDS data set of this project from its manual directory.

  build-tfds --dataset ava --manual_dir AVA_DIR --data_dir TFDS_DIR
  build-tfds --dataset mit_adobe_fivek_pairs --config local_laplacian \\
      --manual_dir FIVEK_DIR --data_dir TFDS_DIR [--runner DirectRunner]

mit_adobe_fivek_pairs is built with Apache Beam (TFDS's Beam support) when
the `beam` extra is installed: on the DirectRunner by default, on any runner
with --runner/--beam_options (docs/scaling.md); `--runner none`, or no
apache-beam, builds it with the plain Python generator.
"""

import sys

from absl import flags

from nima_enhance.bin import common
from nima_enhance.data import beam_runner
from nima_enhance.data import tfds as builders

flags.DEFINE_enum("dataset", "ava", ["ava", "mit_adobe_fivek_pairs"],
                  "Which builder.")
flags.DEFINE_string("config", None, "Builder config (mit_adobe_fivek_pairs: "
                    "the target folder, e.g. local_laplacian).")
flags.DEFINE_string("manual_dir", None, "The loose-file layout to read.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir to write.")
flags.DEFINE_string("runner", None, "mit_adobe_fivek_pairs: Beam runner "
                    "(DirectRunner, DataflowRunner, ...); default DirectRunner "
                    "when apache-beam is installed, else no Beam; 'none': no "
                    "Beam.")
flags.DEFINE_multi_string("beam_options", [], "Beam pipeline options for "
                          "--runner (repeatable).")
flags.DEFINE_integer("workers", 1, "DirectRunner worker processes.",
                     lower_bound=1)
flags.mark_flags_as_required(["manual_dir", "data_dir"])
FLAGS = flags.FLAGS


def main(argv):
  runner = FLAGS.runner
  if runner is None and FLAGS.dataset == "mit_adobe_fivek_pairs":
    runner = "DirectRunner" if beam_runner.beam_installed() else "none"
  if FLAGS.beam_options and runner in (None, "none"):
    raise common.UsageError("--beam_options needs --runner")
  runner_object, options = None, None
  if runner not in (None, "none") and FLAGS.dataset == "mit_adobe_fivek_pairs":
    runner_object, options = beam_runner.pipeline_options(
        runner, FLAGS.beam_options, FLAGS.workers)
    print(f"build-tfds: building with Apache Beam ({runner})", file=sys.stderr)
  builder = builders.build(FLAGS.dataset, FLAGS.data_dir, FLAGS.manual_dir,
                           FLAGS.config, beam_runner=runner_object,
                           beam_options=options)
  splits = ", ".join(f"{name} {split.num_examples}"
                     for name, split in sorted(builder.info.splits.items()))
  skipped = builder.info.metadata.get("skipped", {})
  print(f"{builder.name}: {splits} examples in {builder.data_dir}; skipped "
        f"{skipped}")
  # Skipped inputs make the exit code 1, as in every binary (README).
  common.note_skipped(_count(skipped), f"{builder.data_dir} (metadata "
                      "'skipped')")


def _count(skipped) -> int:
  """Total of the builder's skip counts (nested by split and reason)."""
  if isinstance(skipped, dict):
    return sum(_count(value) for value in skipped.values())
  return skipped if isinstance(skipped, int) else 0


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
