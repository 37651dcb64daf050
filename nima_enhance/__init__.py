"""nima_enhance: NIMA aesthetic scoring and perceptual image enhancement.

Public API (DESIGN.md section 4): build_nima, mean_score, std_score, emd,
metrics (lcc, srcc, two_class_accuracy), and, with the enhancer, build_can and
perceptual_loss.
"""

from nima_enhance import metrics
from nima_enhance.metrics import emd
from nima_enhance.metrics import mean_score
from nima_enhance.metrics import std_score
from nima_enhance.models import small as _small  # registers "small_cnn"
from nima_enhance.models.nima import build_nima

__all__ = ["build_nima", "emd", "mean_score", "metrics", "std_score"]
