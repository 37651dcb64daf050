"""nima_enhance: NIMA aesthetic scoring and perceptual image enhancement.

Public API (docs/architecture.md, "Python API"): `Scorer` and `Enhancer`
(load a model dir, SavedModel or TFLite file; score or enhance paths, arrays
and PIL images; README "Python API"), and the building blocks build_nima,
build_can, mean_score, std_score, emd, perceptual_loss, and metrics (lcc, srcc,
two_class_accuracy, streaming RatingMetrics).
"""

from nima_enhance import metrics
from nima_enhance.api import Enhancer
from nima_enhance.api import Score
from nima_enhance.api import Scorer
from nima_enhance.losses import perceptual_loss
from nima_enhance.metrics import emd
from nima_enhance.metrics import mean_score
from nima_enhance.metrics import std_score
from nima_enhance.models import small as _small  # registers "small_cnn"
from nima_enhance.models.can import build_can
from nima_enhance.models.nima import build_nima

__all__ = ["Enhancer", "Score", "Scorer", "build_can", "build_nima", "emd",
           "mean_score", "metrics", "perceptual_loss", "std_score"]
