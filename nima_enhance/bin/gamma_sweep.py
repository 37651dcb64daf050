"""gamma-sweep: one enhancer per perceptual weight gamma, then a table.

  gamma-sweep --data_dir D --target local_laplacian --nima_model_dir N \
      --gammas 0,1e-5,1e-4,1e-3 --output_dir O --gin_file enhance/tone_nima.gin
  gamma-sweep ... --gin_file sweeps/gamma.gin   # gammas from gamma_sweep.gammas
  gamma-sweep --data_source tfds --tfds_data_dir T --target local_laplacian ..

Each gamma trains into O/gamma_<g>/model and is evaluated into
O/gamma_<g>/eval; O/sweep.{md,csv,json,png} compare PSNR, SSIM and NIMA.
Resumable: gammas with an eval.json are not rerun.
"""

import glob
import os

from absl import flags

from nima_enhance.bin import common
from nima_enhance.enhance import sweep
from nima_enhance.enhance import train as enhance_train

flags.DEFINE_string("gammas", None, "Comma-separated gammas; default: "
                    "gamma_sweep.gammas from the gin files.")
flags.DEFINE_string("output_dir", None, "Sweep output folder.")
flags.DEFINE_integer("num_grids", 4, "Comparison grids per gamma.")
flags.mark_flag_as_required("output_dir")
common.define_pairs_flags()
common.define_gin_flags()
common.define_max_pixels_flag()
common.define_strategy_flags()
FLAGS = flags.FLAGS


def main(argv):
  data_dir = common.pairs_data_dir(FLAGS)
  common.require_dirs(nima_model_dir=FLAGS.nima_model_dir)
  gammas = sweep.parse_gammas(FLAGS.gammas) if FLAGS.gammas else None
  # Validates the gin files once up front (and sets up the strategy).
  strategy = common.setup_training(FLAGS)
  rows = sweep.run_sweep(
      data_dir, enhance_train.resolve_target(FLAGS.target),
      FLAGS.output_dir, gammas,
      nima_model_dir=FLAGS.nima_model_dir, gin_files=FLAGS.gin_file,
      gin_bindings=FLAGS.gin_bindings, split_file=FLAGS.split_file,
      strategy=strategy, seed=FLAGS.seed, num_grids=FLAGS.num_grids,
      data_source=FLAGS.data_source)
  with open(os.path.join(FLAGS.output_dir, "sweep.md"), encoding="utf-8") as f:
    print(f.read(), end="")
  del rows
  # Skipped pairs make the exit code 1, as in every binary (README); every
  # gamma reads the same pairs, so one gamma's lists tell the count.
  lists = sorted(glob.glob(os.path.join(FLAGS.output_dir, "gamma_*", "*",
                                        "skipped_*.txt")))
  if lists:
    first_gamma = os.path.dirname(os.path.dirname(lists[0]))
    lists = [p for p in lists if p.startswith(first_gamma + os.sep)]
    count = 0
    for path in lists:
      with open(path, encoding="utf-8") as f:
        count += sum(1 for line in f if line.strip())
    common.note_skipped(count, ", ".join(lists))


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
