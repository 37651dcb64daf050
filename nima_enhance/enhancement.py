"""Former home of the enhancer code, now the `nima_enhance.enhance` package.

A re-export kept while code outside this package (serving/tflite.py, tests,
tools) still imports `nima_enhance.enhancement`; new code imports
`nima_enhance.enhance.{inference,train,evaluate}`.
"""

# pylint: disable=unused-import
from nima_enhance.enhance.evaluate import NimaScorer
from nima_enhance.enhance.evaluate import evaluate_enhancer
from nima_enhance.enhance.evaluate import psnr
from nima_enhance.enhance.evaluate import ssim
from nima_enhance.enhance.inference import EnhancerBundle
from nima_enhance.enhance.inference import _compact_pixels
from nima_enhance.enhance.inference import enhance_files
from nima_enhance.enhance.inference import load_enhancer
from nima_enhance.enhance.train import _tfds_source
from nima_enhance.enhance.train import resolve_target
from nima_enhance.enhance.train import train_enhancer
from nima_enhance.enhance.train import write_skipped
