"""nima-export: a trained model dir as a versioned SavedModel or TFLite file.

  nima-export --model_dir runs/nima --kind scorer --export_dir exports/nima
  nima-export --model_dir runs/can --kind enhancer --export_dir exports/can
      [--precision float32|bfloat16]
  nima-export --model_dir runs/nima --format tflite --quantize int8 \
      --export_dir exports/nima_tflite [--representative_dir photos/]
  nima-export --model_dir runs/can --format tflite --input_size 480x640 \
      --export_dir exports/can_tflite

Writes <export_dir>/<unix seconds>/ (saved_model.pb, variables/,
assets.extra/{model_metadata.json,operative_config.gin}) atomically and prints
that path on stdout. Signatures: see docs/serving.md. --format tflite writes
<export_dir>/<version>/{model.tflite,tflite_metadata.json} and prints the
.tflite path (input contract: nima_enhance/serving/tflite.py).
"""

import json
import sys

from absl import flags
from absl import logging

from nima_enhance.bin import common
from nima_enhance.serving import export
from nima_enhance.serving import saved_model
from nima_enhance.serving import tflite

flags.DEFINE_string("model_dir", None, "Model dir written by nima-train "
                    "(scorer) or enhance-train (enhancer).")
flags.DEFINE_enum("kind", None, ["scorer", "enhancer"], "What to export; "
                  "default: the kind recorded in model_dir/model_spec.json.")
flags.DEFINE_string("export_dir", None, "Base folder; each export adds an "
                    "integer version folder below it.")
flags.DEFINE_integer("model_version", None, "Version folder name (default: "
                     "the current time in seconds, above any existing one).")
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"],
                  "saved_model (TF Serving) or tflite (on-device).")
flags.DEFINE_enum("quantize", "none", ["none", "float16", "int8"],
                  "TFLite weights/ops: float32, float16 weights, or int8 "
                  "(scorer only; calibrated on training images; uint8 "
                  "input; small_cnn keeps its 16 std-pooling ops in float, "
                  "listed in tflite_metadata.json).")
flags.DEFINE_string("representative_dir", None, "TFLite: images for int8 "
                    "calibration and the agreement check (default: the "
                    "training images model_spec.json records).")
flags.DEFINE_string("input_size", None, "TFLite enhancer: fixed input size "
                    "HxW, e.g. 480x640.")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                  "SavedModel compute dtype, as enhance/nima-score "
                  "--precision (scorer: Keras mixed_bfloat16; enhancer: the "
                  "band schedule in bfloat16); recorded in "
                  "model_metadata.json. TFLite: float32 only.")
flags.mark_flag_as_required("model_dir")
common.define_max_pixels_flag()
flags.mark_flag_as_required("export_dir")
FLAGS = flags.FLAGS


def main(argv):
  if FLAGS.model_version is not None and FLAGS.model_version < 0:
    raise common.UsageError("--model_version must be >= 0")
  common.check_output_dir(FLAGS.export_dir, "export_dir")  # before any work
  if FLAGS.format == "tflite":
    if FLAGS.precision != "float32":
      raise common.UsageError("--precision bfloat16 is for --format "
                              "saved_model (TFLite: --quantize)")
    _export_tflite()
    return
  for name in ("representative_dir", "input_size"):
    if FLAGS[name].present:
      raise common.UsageError(f"--{name} is for --format tflite")
  if FLAGS.quantize != "none":
    raise common.UsageError("--quantize is for --format tflite")
  logging.info("Exporting %s (%s) to %s", FLAGS.model_dir,
               FLAGS.kind or "kind from model_spec.json", FLAGS.export_dir)
  try:
    path = export.export_model(FLAGS.model_dir, FLAGS.export_dir,
                               kind=FLAGS.kind, version=FLAGS.model_version,
                               max_pixels=FLAGS.max_pixels,
                               precision=FLAGS.precision)
  except saved_model.ExportError as err:
    raise common.UsageError(str(err)) from None
  metadata = saved_model.read_metadata(path)
  print(path)
  print(f"nima-export: wrote {metadata['kind']} SavedModel (training step "
        f"{metadata['training_step']}, signatures "
        f"{', '.join(['serving_default'] + list(metadata['signatures']))}) "
        f"to {path}", file=sys.stderr)


def _parse_size(text: str):
  parts = text.lower().split("x")
  if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
    raise common.UsageError(f"--input_size must be HxW (e.g. 480x640), got "
                            f"{text!r}")
  size = tuple(int(p) for p in parts)
  if min(size) < 1:
    raise common.UsageError(f"--input_size must be positive, got {text!r}")
  return size


def _export_tflite():
  size = _parse_size(FLAGS.input_size) if FLAGS.input_size else None
  try:
    path = tflite.export_tflite(
        FLAGS.model_dir, FLAGS.export_dir, kind=FLAGS.kind,
        quantize=FLAGS.quantize, representative_dir=FLAGS.representative_dir,
        input_size=size, version=FLAGS.model_version)
  except (saved_model.ExportError, tflite.TfliteError) as err:
    raise common.UsageError(str(err)) from None
  metadata = tflite.read_metadata(path)
  agreement = (metadata.get("agreement_with_checkpoint") or
               metadata.get("agreement_with_saved_model"))
  print(path)
  print(f"nima-export: wrote {metadata['kind']} TFLite ({FLAGS.quantize}, "
        f"{metadata['size_bytes']} bytes, input "
        f"{metadata['input']['dtype']}{metadata['input']['shape']}; agreement "
        f"{json.dumps(agreement)}) to {path}", file=sys.stderr)
  floor = metadata.get("int8_rounding_floor")
  if floor and floor["pixels_rounded"] and floor["weights_rounded"]:
    # What int8's own roundings cost this checkpoint (docs/serving.md).
    print("nima-export: int8 roundings alone move the checkpoint's means by "
          f"{floor['pixels_rounded']['max_abs_mean_diff']:.3f} (uint8 "
          f"pixels) and {floor['weights_rounded']['max_abs_mean_diff']:.3f} "
          "(int8 kernels); where these exceed your tolerance, ship float16",
          file=sys.stderr)


def run():
  common.run_main(main, takes_paths=False)


if __name__ == "__main__":
  run()
