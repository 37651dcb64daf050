"""build-tfds: builds a TFDS data set of this project from its manual directory.

  build-tfds --dataset ava --manual_dir AVA_DIR --data_dir TFDS_DIR
  build-tfds --dataset mit_adobe_fivek_pairs --config local_laplacian \\
      --manual_dir FIVEK_DIR --data_dir TFDS_DIR
"""

from absl import flags

from nima_enhance.bin import common

flags.DEFINE_enum("dataset", "ava", ["ava", "mit_adobe_fivek_pairs"],
                  "Which builder.")
flags.DEFINE_string("config", None, "Builder config (mit_adobe_fivek_pairs: "
                    "the target folder, e.g. local_laplacian).")
flags.DEFINE_string("manual_dir", None, "The loose-file layout to read.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir to write.")
flags.mark_flags_as_required(["manual_dir", "data_dir"])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise common.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from nima_enhance.data import tfds as builders  # pylint: disable=g-import-not-at-top
  builder = builders.build(FLAGS.dataset, FLAGS.data_dir, FLAGS.manual_dir,
                           FLAGS.config)
  splits = ", ".join(f"{name} {split.num_examples}"
                     for name, split in sorted(builder.info.splits.items()))
  print(f"{builder.name}: {splits} examples in {builder.data_dir}; skipped "
        f"{builder.info.metadata.get('skipped', {})}")


def run():
  common.run_main(main)


if __name__ == "__main__":
  run()
