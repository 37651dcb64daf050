"""nima-export: a trained model dir as a versioned SavedModel for TF Serving.

  nima-export --model_dir runs/nima --kind scorer --export_dir exports/nima
  nima-export --model_dir runs/can --kind enhancer --export_dir exports/can

Writes <export_dir>/<unix seconds>/ (saved_model.pb, variables/,
assets.extra/{model_metadata.json,operative_config.gin}) atomically and prints
that path on stdout. Signatures: see docs/serving.md.
"""

import sys

from absl import flags
from absl import logging

from nima_enhance.bin import common

flags.DEFINE_string("model_dir", None, "Model dir written by nima-train "
                    "(scorer) or enhance-train (enhancer).")
flags.DEFINE_enum("kind", None, ["scorer", "enhancer"], "What to export; "
                  "default: the kind recorded in model_dir/model_spec.json.")
flags.DEFINE_string("export_dir", None, "Base folder; each export adds an "
                    "integer version folder below it.")
flags.DEFINE_integer("model_version", None, "Version folder name (default: "
                     "the current time in seconds, above any existing one).")
flags.mark_flag_as_required("model_dir")
flags.mark_flag_as_required("export_dir")
FLAGS = flags.FLAGS


def main(argv):
  if argv[1:]:
    raise common.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.model_version is not None and FLAGS.model_version < 0:
    raise common.UsageError("--model_version must be >= 0")
  from nima_enhance.serving import export  # pylint: disable=g-import-not-at-top
  logging.info("Exporting %s (%s) to %s", FLAGS.model_dir,
               FLAGS.kind or "kind from model_spec.json", FLAGS.export_dir)
  try:
    path = export.export_model(FLAGS.model_dir, FLAGS.export_dir,
                               kind=FLAGS.kind, version=FLAGS.model_version)
  except export.ExportError as err:
    raise common.UsageError(str(err)) from None
  metadata = export.read_metadata(path)
  print(path)
  print(f"nima-export: wrote {metadata['kind']} SavedModel (training step "
        f"{metadata['training_step']}, signatures "
        f"{', '.join(['serving_default'] + list(metadata['signatures']))}) "
        f"to {path}", file=sys.stderr)


def run():
  common.run_main(main)


if __name__ == "__main__":
  run()
