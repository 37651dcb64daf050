"""nima-enhance-demo: the whole paper pipeline on bundled real photos.

  nima-enhance-demo [--output_dir runs/demo] [--quick] [--seed 0]

No download: the data come from scikit-image's bundled photographs. Writes
report.html, summary.json, the model dirs and two SavedModels to --output_dir.
"""

from absl import flags

from nima_enhance import demo
from nima_enhance.bin import common

flags.DEFINE_string("output_dir", "runs/demo", "Where everything is written.")
flags.DEFINE_bool("quick", False, "Smaller data and fewer steps (~3 minutes).")
flags.DEFINE_integer("seed", 0, "Seed for data generation and training.")
FLAGS = flags.FLAGS


def main(argv):
  demo.run_demo(FLAGS.output_dir, quick=FLAGS.quick, seed=FLAGS.seed,
                log=lambda line: print(line, flush=True))


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
