"""nima-train: train NIMA on an AVA-layout folder.

  nima-train --ava_dir D --model_dir M --gin_file nima/mobilenet.gin \
      [--gin_bindings 'train_loop.num_steps=1000'] [--distribution_strategy ..]
"""

import os

from absl import flags
from absl import logging

from nima_enhance.bin import common

flags.DEFINE_string("ava_dir", None, "AVA folder: AVA.txt, images/<id>.jpg.")
flags.mark_flag_as_required("ava_dir")
common.define_model_dir_flag()
common.define_gin_flags()
common.define_strategy_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise common.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  strategy = common.setup_training(FLAGS)
  from nima_enhance.data import ava  # pylint: disable=g-import-not-at-top
  from nima_enhance.train import loop  # pylint: disable=g-import-not-at-top
  from nima_enhance.train import nima_task  # pylint: disable=g-import-not-at-top
  os.makedirs(FLAGS.model_dir, exist_ok=True)
  ratings, report = ava.load_split(FLAGS.ava_dir, "train",
                                   cache_dir=FLAGS.model_dir, seed=FLAGS.seed)
  common.report_skipped(report, FLAGS.model_dir, "train")
  task = nima_task.NimaTask(FLAGS.ava_dir, ratings)
  result = loop.train_loop(task, FLAGS.model_dir, strategy=strategy,
                           seed=FLAGS.seed)
  logging.info("Finished at step %d, loss %.4f, %.2f steps/s (%.1f images/s)",
               result["step"], result["loss"], result["steps_per_sec"],
               result["examples_per_sec"])
  print(f"nima-train: step {result['step']} loss {result['loss']:.4f} "
        f"{result['examples_per_sec']:.1f} images/s checkpoint "
        f"{result['checkpoint']}")


def run():
  common.run_main(main)


if __name__ == "__main__":
  run()
