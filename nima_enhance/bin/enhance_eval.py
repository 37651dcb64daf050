"""enhance-eval: PSNR/SSIM against the target, NIMA statistics, figures.

  enhance-eval --data_dir D --target local_laplacian --model_dir M \
      --output_dir O [--nima_model_dir N] [--split test] [--num_grids 8]
  enhance-eval --data_source tfds --tfds_data_dir T --target local_laplacian ..

Writes O/eval.json, O/nima_scores.png (Fig. 6) and O/grids/<name>.png
(input | reference | output, Figs. 7-10); prints a one-line JSON summary.
"""

import json

from absl import flags

from nima_enhance import config
from nima_enhance.bin import common
from nima_enhance.enhance import evaluate as enhance_eval
from nima_enhance.enhance import train as enhance_train

flags.DEFINE_string("output_dir", None, "Where eval.json and figures go.")
flags.DEFINE_enum("split", "test", ["train", "test", "all"], "Pairs to use.")
flags.DEFINE_integer("num_grids", 8, "Comparison grids to write.")
flags.DEFINE_integer("max_images", None, "Evaluate at most this many pairs.")
flags.DEFINE_bool("save_outputs", False, "Also write O/outputs/<name>.png "
                  "(16-bit).")
flags.mark_flag_as_required("output_dir")
common.define_pairs_flags()
common.define_model_dir_flag()
common.define_gin_flags()
common.define_max_pixels_flag()
common.define_enhancer_inference_flags()
FLAGS = flags.FLAGS


def main(argv):
  data_dir = common.pairs_data_dir(FLAGS)
  common.require_dirs(model_dir=FLAGS.model_dir)
  common.check_output_dir(FLAGS.output_dir)  # before any work
  config.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
  result = enhance_eval.evaluate_enhancer(
      data_dir, enhance_train.resolve_target(FLAGS.target, FLAGS.model_dir),
      FLAGS.model_dir, FLAGS.output_dir,
      nima_model_dir=FLAGS.nima_model_dir, split=FLAGS.split,
      split_file=FLAGS.split_file, num_grids=FLAGS.num_grids,
      save_outputs=FLAGS.save_outputs, max_images=FLAGS.max_images,
      tile_size=FLAGS.tile_size, memory_budget_gb=FLAGS.memory_budget_gb,
      precision=FLAGS.precision, data_source=FLAGS.data_source)
  summary = {k: (v["mean"] if isinstance(v, dict) and "mean" in v else v)
             for k, v in result.items()
             if k not in ("per_image", "skipped", "checkpoint")}
  summary["skipped"] = len(result["skipped"])
  print(json.dumps(summary))
  common.note_skipped(len(result["skipped"]),
                      f"{FLAGS.output_dir}/skipped_{FLAGS.split}.txt")


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
