"""nima-eval: the paper's Table 1 metrics of a trained NIMA on an AVA split.

  nima-eval --ava_dir D --model_dir M [--split test] [--output metrics.json]
"""

import json
import os

from absl import flags

from nima_enhance import config
from nima_enhance import scoring
from nima_enhance.bin import common
from nima_enhance.data import ava
from nima_enhance.data import image_write

flags.DEFINE_string("ava_dir", None, "AVA folder: AVA.txt, images/<id>.jpg.")
flags.mark_flag_as_required("ava_dir")
flags.DEFINE_enum("split", "test", ["train", "test", "all"], "Split to score.")
flags.DEFINE_string("output", None, "JSON file for the metrics (default: "
                    "<model_dir>/eval_<split>.json).")
flags.DEFINE_integer("batch_size", 32, "Evaluation batch size.")
flags.DEFINE_integer("seed", 0, "Seed of the 80/20 split (must match training).")
common.define_model_dir_flag()
common.define_gin_flags()
common.define_max_pixels_flag()
FLAGS = flags.FLAGS


def format_table_row(name: str, result) -> str:
  """The Table 1 row: accuracy, LCC, SRCC, EMD (r = 1)."""
  return ("| model | accuracy | LCC | SRCC | EMD |\n|---|---|---|---|---|\n"
          f"| {name} | {100 * result['accuracy']:.2f}% | {result['lcc']:.3f} | "
          f"{result['srcc']:.3f} | {result['emd']:.3f} |")


def main(argv):
  output = FLAGS.output or os.path.join(FLAGS.model_dir,
                                        f"eval_{FLAGS.split}.json")
  common.check_output_file(output, "output")  # before any work
  config.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
  bundle = scoring.load_nima(FLAGS.model_dir)
  ratings, report = ava.load_split(FLAGS.ava_dir, FLAGS.split,
                                   cache_dir=FLAGS.model_dir, seed=FLAGS.seed)
  common.report_skipped(report, FLAGS.model_dir, FLAGS.split)
  result = scoring.evaluate_split(bundle, FLAGS.ava_dir, ratings,
                                  FLAGS.batch_size)
  result.update({"split": FLAGS.split, "checkpoint": bundle.checkpoint,
                 "backbone": bundle.spec.get("build_nima", {}).get(
                     "backbone", "mobilenet"),
                 "skipped_images": len(report.skipped)})
  image_write.atomic_write_bytes(output, json.dumps(result, indent=2).encode())
  print(format_table_row(f"NIMA({result['backbone']})", result))
  print(json.dumps(result, sort_keys=True))


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
