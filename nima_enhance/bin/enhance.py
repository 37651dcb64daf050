"""enhance: run a trained enhancer on images at their original size.

  enhance --model_dir M photo.jpg more_photos/ --output_dir O \
      [--bit_depth 16] [--format png|jpeg] [--tile_size N]
      [--memory_budget_gb G] [--precision float32|bfloat16]

Any photo size runs in bounded memory (exact band schedule, see README);
a photo that fails is named and skipped, the rest are processed.

Outputs are O/<name>.png (or .jpg), written atomically. A thin wrapper over
`nima_enhance.Enhancer` (README "Python API").
"""

import os

from absl import flags
from absl import logging

from nima_enhance import api
from nima_enhance.bin import common
from nima_enhance.data import image_files

flags.DEFINE_string("model_dir", None, "enhance-train model dir.")
flags.DEFINE_string("saved_model", None, "Exported enhancer SavedModel "
                    "(nima-export --kind enhancer).")
flags.DEFINE_string("output_dir", None, "Where enhanced images go.")
flags.DEFINE_enum("bit_depth", "8", ["8", "16"], "PNG bit depth (JPEG: 8).")
flags.DEFINE_enum("format", "png", ["png", "jpeg"], "Output format.")
flags.DEFINE_bool("jit_compile", True, "XLA-compile the one-piece CAN pass "
                  "(--tile_size 0; about a second of compilation per new "
                  "image size).")
common.define_enhancer_inference_flags()
common.define_max_pixels_flag()
flags.mark_flag_as_required("output_dir")
FLAGS = flags.FLAGS


def main(argv):
  inputs = argv[1:]
  if not inputs:
    raise common.UsageError("give one or more image files or folders")
  if bool(FLAGS.model_dir) == bool(FLAGS.saved_model):
    raise common.UsageError("give exactly one of --model_dir, --saved_model")
  if FLAGS.format == "jpeg" and FLAGS.bit_depth == "16":
    raise common.UsageError("--format jpeg is 8-bit only")
  for path in inputs:
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path}: no such file or folder")
  scan = image_files.scan_inputs(inputs)
  if not scan.files:
    raise common.nothing_processed(f"no images in {' '.join(inputs)} "
                                   f"({len(scan.skipped)} other entries)")
  # Before loading the model: never beside the inputs, and writable.
  image_files.refuse_overwrite(scan.files, FLAGS.output_dir)
  common.check_output_dir(FLAGS.output_dir)
  enhancer = api.Enhancer.load(
      FLAGS.saved_model or FLAGS.model_dir,
      kind="saved_model" if FLAGS.saved_model else "model_dir",
      jit_compile=FLAGS.jit_compile, tile_size=FLAGS.tile_size,
      memory_budget_gb=FLAGS.memory_budget_gb, precision=FLAGS.precision)
  for path, reason in scan.skipped.items():
    logging.warning("skipped %s: %s", path, reason)
  result = enhancer.enhance_files(scan.files, FLAGS.output_dir,
                                  fmt=FLAGS.format,
                                  bit_depth=int(FLAGS.bit_depth))
  skipped = len(scan.skipped) + len(result["skipped"])
  print(f"enhance: wrote {len(result['written'])} images to "
        f"{FLAGS.output_dir}, skipped {skipped}")
  if not result["written"]:
    raise common.nothing_processed(f"all {skipped} inputs skipped (reasons "
                                   "in the warnings above)")
  common.note_skipped(skipped, "the warnings above")


def run():
  common.run_main(main)


if __name__ == "__main__":
  run()
