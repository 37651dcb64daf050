"""Shared plumbing for the thin absl binaries: common flags, clean failures.

Every binary ends bad input (bad flags, bad gin, missing data) with one line on
stderr and exit code 2, never a traceback. Exit codes, the same for every
binary (README "Input images"): 0 every input was processed; 1 some inputs
were skipped (the summary line says how many and where the list is); 2 a
usage error, or nothing could be processed.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging
import gin
import keras
import tensorflow as tf

from nima_enhance import config
from nima_enhance.data import image_files
from nima_enhance.data import image_write
from nima_enhance.train import distribute


class UsageError(Exception):
  """Bad user input; printed as one line and exit code 2."""


# Errors that end a binary with one line and exit code 2. Library code raises
# a ValueError subclass per domain for bad input (ConfigError, AvaFormatError,
# ExportError, ImageReadError, ...), and gin re-raises a configurable's error
# with the binding's name, so ValueError covers bad gin values as well.
_USER_ERRORS = (UsageError, ValueError, FileNotFoundError, NotADirectoryError,
                IsADirectoryError, PermissionError)

# Inputs skipped by this run (note_skipped); non-zero makes the exit code 1.
_skipped = {"count": 0, "where": []}


def note_skipped(count: int, where: str = "") -> None:
  """Records skipped inputs: the binary then exits 1 (after finishing)."""
  if count:
    _skipped["count"] += int(count)
    if where:
      _skipped["where"].append(where)


def nothing_processed(what: str) -> UsageError:
  """The error for a run where no input could be processed (exit 2)."""
  return UsageError(f"nothing processed: {what}")


def define_max_pixels_flag() -> None:
  """--max_pixels: the reading contract's pixel limit (header, pre-decode)."""
  flags.DEFINE_integer("max_pixels", 200_000_000, "Images with more pixels "
                       "(width x height, read from the header) are skipped "
                       "unread.", lower_bound=1)


def check_output_dir(path: str, flag: str = "output_dir") -> None:
  """Creates --<flag> if needed and proves it writable, before any work."""
  image_files.check_writable_dir(path, f"--{flag}")


def check_output_file(path: str, flag: str = "output") -> None:
  """Proves --<flag> writable (its folder is created), before any work."""
  image_files.check_writable_file(path, f"--{flag}")


def one_line(err: BaseException) -> str:
  """An error as one line; gin's "In call to configurable" note is kept."""
  lines = [l.strip() for l in str(err).strip().splitlines() if l.strip()]
  if not lines:
    return type(err).__name__
  text = lines[0]
  for line in lines[1:]:
    if line.startswith("In call to configurable"):
      text += f" ({line.split(' (<', 1)[0].replace('In call to', 'in')})"
      break
  return text


def define_gin_flags() -> None:
  """--gin_file (repeatable) and --gin_bindings (repeatable)."""
  flags.DEFINE_multi_string("gin_file", [], "Gin config file(s); a path, "
                            "gin/nima/x.gin or nima/x.gin.")
  flags.DEFINE_multi_string("gin_bindings", [], "Gin binding(s), e.g. "
                            "'train_loop.num_steps=100'.")


def define_model_dir_flag(required: bool = True) -> None:
  flags.DEFINE_string("model_dir", None, "Model directory (checkpoints, "
                      "summaries, operative_config.gin).")
  if required:
    flags.mark_flag_as_required("model_dir")


def define_pairs_flags() -> None:
  """--data_dir or --data_source tfds --tfds_data_dir, --target,
  --nima_model_dir, --split_file (enhance-train, enhance-eval, gamma-sweep)."""
  flags.DEFINE_string("data_dir", None, "Folder with input/<name>.* and "
                      "<target>/<name>.png (--data_source=files).")
  flags.DEFINE_enum("data_source", "files", ["files", "tfds"], "files: the "
                    "loose pairs folder --data_dir; tfds: the TFRecords of the "
                    "TFDS `mit_adobe_fivek_pairs/<target>` builder in "
                    "--tfds_data_dir (build-tfds), with their own split.")
  flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir holding the "
                      "prepared `mit_adobe_fivek_pairs` (--data_source=tfds).")
  flags.register_multi_flags_validator(
      ["data_dir", "data_source", "tfds_data_dir"],
      lambda f: bool(f["data_dir"]) if f["data_source"] == "files"
      else bool(f["tfds_data_dir"]),
      message="--data_dir is required (or --data_source=tfds with "
      "--tfds_data_dir)")
  flags.DEFINE_string("target", None, "Target folder name, e.g. "
                      "local_laplacian or nonlocal_dehaze (default: "
                      "enhancer_target.name from gin).")
  flags.DEFINE_string("nima_model_dir", None, "nima-train model dir of the "
                      "frozen NIMA (loss when perceptual_loss.gamma > 0, and "
                      "score statistics).")
  flags.DEFINE_string("split_file", None, "File listing the test names (the "
                      "rest trains); default: sorted names, first half trains.")


def pairs_data_dir(flag_values) -> str:
  """The pairs' location: --data_dir (checked) or --tfds_data_dir."""
  if flag_values.data_source == "tfds":
    return flag_values.tfds_data_dir
  require_dirs(data_dir=flag_values.data_dir)
  return flag_values.data_dir


def define_enhancer_inference_flags() -> None:
  """--tile_size, --memory_budget_gb, --precision (enhance, enhance-eval)."""
  flags.DEFINE_integer("tile_size", None, "Rows per band of the exact "
                       "bounded-memory CAN schedule; 0 = the whole image in "
                       "one piece; default: chosen from --memory_budget_gb "
                       "and the image's short side.", lower_bound=0)
  flags.DEFINE_float("memory_budget_gb", 1.5, "Working memory (GB) the CAN "
                     "may use when --tile_size is not given.",
                     lower_bound=0.05)
  flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                    "Compute dtype of the CAN's activations (bfloat16: "
                    "float32 accumulation; see README Performance).")


def require_dirs(**folders) -> None:
  """Raises FileNotFoundError naming the flag of a given but missing folder."""
  for flag_name, path in folders.items():
    if path and not os.path.isdir(path):
      raise FileNotFoundError(f"--{flag_name} {path}: no such folder")


def define_strategy_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """--distribution_strategy, --tpu, --worker_hosts/--task_index, precision.

  Args:
    flag_values: where to define them (tests pass a fresh FlagValues).
  """
  fv = flag_values
  flags.DEFINE_enum("distribution_strategy", "one_device",
                    list(distribute.STRATEGIES),
                    "tf.distribute strategy.", flag_values=fv)
  flags.DEFINE_string("tpu", None, "TPU name, grpc://host:port, or 'local' on "
                      "a TPU VM (--distribution_strategy=tpu).", flag_values=fv)
  flags.DEFINE_string("worker_hosts", None, "Comma-separated host:port list; "
                      "writes TF_CONFIG for multi_worker_mirrored.",
                      flag_values=fv)
  flags.DEFINE_integer("task_index", 0, "This worker's index in "
                       "--worker_hosts.", flag_values=fv)
  flags.DEFINE_integer("num_gpus", None, "GPUs for mirrored (default: all).",
                       flag_values=fv)
  flags.DEFINE_bool("mixed_precision", False, "mixed_float16 on GPU (with loss "
                    "scaling), mixed_bfloat16 on TPU/CPU.", flag_values=fv)
  flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step.",
                    flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed for every random choice.",
                       flag_values=fv)


def fail(message: str) -> None:
  """Prints one line and exits with code 2."""
  prog = os.path.basename(sys.argv[0]) if sys.argv else "nima_enhance"
  sys.stderr.write(f"{prog}: error: {message}\n")
  sys.stderr.flush()
  sys.exit(2)


def run_main(main: Callable[[list[str]], None],
             takes_paths: bool = True) -> None:
  """absl app.run with bad input turned into one line + exit code 2.

  Args:
    main: the binary's main, called with absl's argv (program name first).
    takes_paths: whether the binary accepts positional arguments (image
      paths); when False any positional argument is a usage error.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  std_logging.getLogger("tensorflow").setLevel(std_logging.ERROR)

  def _wrapped(argv):
    logging.set_verbosity(logging.INFO)
    try:
      if "max_pixels" in flags.FLAGS:
        image_files.set_max_pixels(flags.FLAGS.max_pixels)
      if not takes_paths and len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
      main(argv)
    except _USER_ERRORS as err:
      if os.environ.get("NIMA_ENHANCE_TRACEBACK"):
        raise
      fail(one_line(err))
    except TypeError as err:
      # A bad gin value (train_loop.num_steps="five") fails inside the
      # configurable; gin names the binding in the message.
      if "configurable" not in str(err):
        raise
      fail(one_line(err))
    if _skipped["count"]:
      where = "; list in " + ", ".join(_skipped["where"]) if _skipped[
          "where"] else ""
      sys.stderr.write(f"{os.path.basename(sys.argv[0])}: "
                       f"{_skipped['count']} input(s) skipped{where} "
                       "(exit code 1)\n")
      sys.exit(1)

  try:
    # Parse first so bad flags end in one line; app.run gets the positionals.
    remaining = flags.FLAGS(sys.argv)
  except flags.Error as err:
    fail(str(err).splitlines()[0])
  app.run(_wrapped, argv=sys.argv, flags_parser=lambda _: remaining)


def setup_training(flag_values):
  """Shared start of every training binary: cluster, precision, gin, strategy.

  Returns:
    the tf.distribute strategy named by --distribution_strategy.
  """
  if getattr(flag_values, "model_dir", None):
    check_output_dir(flag_values.model_dir, "model_dir")  # before any work
  if flag_values.worker_hosts:
    try:
      distribute.write_tf_config(flag_values.worker_hosts.split(","),
                                 flag_values.task_index)
    except ValueError as err:
      raise UsageError(str(err)) from None
  try:
    # Checked before anything touches TensorFlow, so the reason is one line.
    distribute.check_tpu_name(flag_values.distribution_strategy,
                              flag_values.tpu)
  except ValueError as err:
    raise UsageError(str(err)) from None
  if flag_values.mixed_precision:
    policy = precision_policy(flag_values.distribution_strategy,
                              bool(tf.config.list_physical_devices("GPU")))
    keras.mixed_precision.set_global_policy(policy)
    logging.info("Mixed precision policy: %s", policy)
  config.parse_gin(flag_values.gin_file, flag_values.gin_bindings,
                   finalize=False)
  if flag_values.jit_compile:
    with gin.unlock_config():
      gin.bind_parameter("train_loop.jit_compile", True)
  try:
    strategy = distribute.get_strategy(flag_values.distribution_strategy,
                                       tpu=flag_values.tpu,
                                       num_gpus=flag_values.num_gpus)
  except ValueError as err:
    raise UsageError(str(err)) from None
  logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
               strategy.num_replicas_in_sync)
  return strategy


def precision_policy(distribution_strategy: str, has_gpu: bool) -> str:
  """The --mixed_precision policy: float16 (loss-scaled) only on GPUs."""
  if has_gpu and distribution_strategy != "tpu":
    return "mixed_float16"
  return "mixed_bfloat16"


def report_skipped(report, model_dir: str, split: str) -> None:
  """Logs and records (model_dir/skipped_<split>.txt) unusable image files."""
  print(f"{split}: {report.summary()}", file=sys.stderr)
  if report.skipped:
    for image_id, reason in sorted(report.skipped.items())[:20]:
      logging.warning("skipped %s: %s", image_id, reason)
    lines = "".join(f"{i}\t{r}\n" for i, r in sorted(report.skipped.items()))
    path = os.path.join(model_dir, f"skipped_{split}.txt")
    image_write.atomic_write_bytes(path, lines.encode("utf-8"))
    logging.warning("%d %s images skipped; full list in %s",
                    len(report.skipped), split, path)
    note_skipped(len(report.skipped), path)
