"""nima-score: NIMA mean score, std and distribution for images or folders.

  nima-score --model_dir M photo.jpg more_photos/ [--output scores.csv]
  nima-score --saved_model E/1700000000 photos/ --output scores.csv
"""

import csv
import io
import sys

from absl import flags
from absl import logging

from nima_enhance.bin import common

flags.DEFINE_string("model_dir", None, "Model dir written by nima-train.")
flags.DEFINE_string("saved_model", None, "A SavedModel written by nima-export "
                    "(instead of --model_dir).")
flags.DEFINE_string("output", None, "CSV file (default: standard output).")
flags.DEFINE_integer("batch_size", 32, "Images per batch.")
common.define_gin_flags()
FLAGS = flags.FLAGS

HEADER = ["path", "mean", "std"] + [f"p{i}" for i in range(1, 11)]


def main(argv):
  from nima_enhance import config  # pylint: disable=g-import-not-at-top
  from nima_enhance import scoring  # pylint: disable=g-import-not-at-top
  from nima_enhance.data import images  # pylint: disable=g-import-not-at-top
  if bool(FLAGS.model_dir) == bool(FLAGS.saved_model):
    raise common.UsageError("give exactly one of --model_dir or --saved_model")
  paths = images.list_images(argv[1:])
  if not argv[1:]:
    raise common.UsageError("no images or folders given")
  if not paths:
    raise common.UsageError(f"no images found in {' '.join(argv[1:])}")
  config.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
  if FLAGS.saved_model:
    from nima_enhance.serving import export  # pylint: disable=g-import-not-at-top
    scored = export.score_files_with_saved_model(FLAGS.saved_model, paths,
                                                 FLAGS.batch_size)
  else:
    bundle = scoring.load_nima(FLAGS.model_dir)
    scored = scoring.score_files(bundle, paths, FLAGS.batch_size)
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(HEADER)
  good = skipped = 0
  for item in scored:
    if item.error:
      skipped += 1
      logging.warning("skipped %s", item.error)
      continue
    good += 1
    writer.writerow([item.path, f"{item.mean:.4f}", f"{item.std:.4f}"]
                    + [f"{p:.6f}" for p in item.distribution])
  if FLAGS.output:
    images.atomic_write_bytes(FLAGS.output, buffer.getvalue().encode("utf-8"))
  else:
    sys.stdout.write(buffer.getvalue())
  print(f"nima-score: scored {good} images, skipped {skipped}"
        + (f", wrote {FLAGS.output}" if FLAGS.output else ""), file=sys.stderr)


def run():
  common.run_main(main)


if __name__ == "__main__":
  run()
