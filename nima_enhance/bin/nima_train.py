"""nima-train: train NIMA on an AVA-layout folder or the TFDS `ava` records.

  nima-train --ava_dir D --model_dir M --gin_file nima/mobilenet.gin \
      [--gin_bindings 'train_loop.num_steps=1000'] [--distribution_strategy ..]
  nima-train --data_source tfds --tfds_data_dir T --model_dir M ..

The TFDS records are built once with
`build-tfds --dataset ava --manual_dir D
--data_dir T` (docs/scaling.md).
"""

import os
import sys

from absl import flags
from absl import logging

from nima_enhance.bin import common
from nima_enhance.data import ava
from nima_enhance.train import loop
from nima_enhance.train import nima_task

flags.DEFINE_string("ava_dir", None, "AVA folder: AVA.txt, images/<id>.jpg "
                    "(--data_source=files).")
flags.DEFINE_enum("data_source", "files", ["files", "tfds"], "files: the "
                  "loose AVA folder; tfds: the sharded TFRecords of the TFDS "
                  "`ava` builder in --tfds_data_dir.")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir holding the prepared "
                    "`ava` data set (--data_source=tfds).")
flags.register_multi_flags_validator(
    ["ava_dir", "data_source", "tfds_data_dir"],
    lambda f: bool(f["ava_dir"]) if f["data_source"] == "files"
    else bool(f["tfds_data_dir"]),
    message="--ava_dir is required (or --data_source=tfds with "
    "--tfds_data_dir)")
common.define_model_dir_flag()
common.define_gin_flags()
common.define_max_pixels_flag()
common.define_strategy_flags()
FLAGS = flags.FLAGS


def main(argv):
  strategy = common.setup_training(FLAGS)
  os.makedirs(FLAGS.model_dir, exist_ok=True)
  if FLAGS.data_source == "tfds":
    task = _tfds_task(nima_task, FLAGS.tfds_data_dir)
  else:
    ratings, report = ava.load_split(FLAGS.ava_dir, "train",
                                     cache_dir=FLAGS.model_dir,
                                     seed=FLAGS.seed)
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


def _tfds_task(nima_task, data_dir: str):
  """A NimaTask whose training input is the TFDS `ava` train split."""
  task = nima_task.NimaTfdsTask(data_dir)
  print(f"train: {task.num_examples} examples from TFDS ava in {data_dir} "
        f"(skipped at build time: {task.skipped_at_build})", file=sys.stderr)
  return task


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
