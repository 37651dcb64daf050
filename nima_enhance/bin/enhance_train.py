"""enhance-train: train the CAN enhancer with the perceptual loss (eq. 1).

  enhance-train --data_dir D --target local_laplacian --model_dir M \
      --gin_file enhance/tone_nima.gin --nima_model_dir N \
      [--gin_bindings 'perceptual_loss.gamma=1e-4'] [--split_file F]
  enhance-train --data_source tfds --tfds_data_dir T --target local_laplacian ..

Pairs are D/input/<name>.* -> D/<target>/<name>.png; gamma = 0 is plain L2
(Chen et al.) and needs no NIMA. With --data_source tfds the pairs are the
`mit_adobe_fivek_pairs/<target>` records `build-tfds` wrote (docs/scaling.md).
"""


from absl import flags
from absl import logging

from nima_enhance.bin import common
from nima_enhance.enhance import train as enhance_train

common.define_pairs_flags()
common.define_model_dir_flag()
common.define_gin_flags()
common.define_max_pixels_flag()
common.define_strategy_flags()
FLAGS = flags.FLAGS


def main(argv):
  data_dir = common.pairs_data_dir(FLAGS)
  common.require_dirs(nima_model_dir=FLAGS.nima_model_dir)
  strategy = common.setup_training(FLAGS)
  result = enhance_train.train_enhancer(
      data_dir, enhance_train.resolve_target(FLAGS.target), FLAGS.model_dir,
      nima_model_dir=FLAGS.nima_model_dir, split_file=FLAGS.split_file,
      strategy=strategy, seed=FLAGS.seed, data_source=FLAGS.data_source)
  logging.info("Finished at step %d, loss %.6f, %.2f steps/s",
               result["step"], result["loss"], result["steps_per_sec"])
  print(f"enhance-train: step {result['step']} loss {result['loss']:.6f} "
        f"{result['steps_per_sec']:.2f} steps/s checkpoint "
        f"{result['checkpoint']}")
  # Exit code 1 when pairs were skipped (README "Input images").
  common.note_skipped(result.get("skipped_pairs", 0),
                      f"{FLAGS.model_dir}/skipped_train.txt")


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
