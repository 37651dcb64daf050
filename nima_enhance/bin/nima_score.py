"""nima-score: NIMA mean score, std and distribution for images or folders.

A thin wrapper over `nima_enhance.Scorer` (README "Python API").

  nima-score --model_dir M photo.jpg more_photos/ [--output scores.csv]
      [--precision float32|bfloat16]
  nima-score --saved_model E/1700000000 photos/ --output scores.csv
  nima-score --tflite T/1700000000/model.tflite photos/ --output scores.csv
"""

import csv
import io
import os
import sys

from absl import flags
from absl import logging

from nima_enhance import api
from nima_enhance import config
from nima_enhance.bin import common
from nima_enhance.data import image_files
from nima_enhance.data import image_write
from nima_enhance.serving import tflite_runner

flags.DEFINE_string("model_dir", None, "Model dir written by nima-train.")
flags.DEFINE_string("saved_model", None, "A SavedModel written by nima-export "
                    "(instead of --model_dir).")
flags.DEFINE_string("tflite", None, "A .tflite scorer written by nima-export "
                    "--format tflite (its folder or export base also work); "
                    "same reading and resize as --model_dir.")
flags.DEFINE_integer("tflite_threads", None, "TFLite interpreter threads "
                     "(default: the interpreter's).")
flags.DEFINE_string("output", None, "CSV file (default: standard output).")
flags.DEFINE_integer("batch_size", 32, "Images per batch (read ahead "
                     "together; on a CPU the model runs on calls of one "
                     "480x640 input's pixels, scoring.model_call_size).",
                     lower_bound=1)
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                  "--model_dir only: bfloat16 runs NIMA under Keras' "
                  "mixed_bfloat16 policy (batch norm and the softmax head in "
                  "float32), as enhance --precision; an export keeps the "
                  "precision it was exported with.")
common.define_gin_flags()
common.define_max_pixels_flag()
FLAGS = flags.FLAGS

HEADER = ["path", "mean", "std"] + [f"p{i}" for i in range(1, 11)]


def main(argv):
  if sum(bool(v) for v in (FLAGS.model_dir, FLAGS.saved_model,
                            FLAGS.tflite)) != 1:
    raise common.UsageError("give exactly one of --model_dir, --saved_model "
                            "or --tflite")
  if not argv[1:]:
    raise common.UsageError("no images or folders given")
  for path in argv[1:]:
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path}: no such file or folder")
  scan = image_files.scan_inputs(argv[1:])
  paths = scan.files
  if not paths:
    raise common.nothing_processed(f"no images in {' '.join(argv[1:])}"
                                   f" ({len(scan.skipped)} other entries)")
  if FLAGS.precision != "float32" and not FLAGS.model_dir:
    raise common.UsageError("--precision is for --model_dir (an export keeps "
                            "the precision given to nima-export)")
  if FLAGS.output:
    common.check_output_file(FLAGS.output)  # before any scoring
  config.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
  kind, path = next((k, p) for k, p in (("model_dir", FLAGS.model_dir),
                                        ("saved_model", FLAGS.saved_model),
                                        ("tflite", FLAGS.tflite)) if p)
  try:
    scorer = api.Scorer.load(path, batch_size=FLAGS.batch_size,
                             tflite_threads=FLAGS.tflite_threads, kind=kind,
                             precision=FLAGS.precision)
  except tflite_runner.TfliteError as err:
    raise common.UsageError(str(err)) from None
  scored = scorer.score_files(paths)
  buffer = io.StringIO()
  writer = csv.writer(buffer)
  writer.writerow(HEADER)
  good, skipped = 0, len(scan.skipped)
  for path, reason in scan.skipped.items():
    logging.warning("skipped %s: %s", path, reason)
  for item in scored:
    if item.skipped:
      skipped += 1
      logging.warning("skipped %s", item.skipped)
      continue
    good += 1
    writer.writerow([item.name, f"{item.mean:.4f}", f"{item.std:.4f}"]
                    + [f"{p:.6f}" for p in item.distribution])
  if not good:
    raise common.nothing_processed(f"all {skipped} inputs skipped (reasons "
                                   "in the warnings above)")
  if FLAGS.output:
    image_write.atomic_write_bytes(FLAGS.output,
                                   buffer.getvalue().encode("utf-8"))
  else:
    sys.stdout.write(buffer.getvalue())
  print(f"nima-score: scored {good} images, skipped {skipped}"
        + (f", wrote {FLAGS.output}" if FLAGS.output else ""), file=sys.stderr)
  common.note_skipped(skipped, "the warnings above")


def run():
  common.run_main(main)


if __name__ == "__main__":
  run()
