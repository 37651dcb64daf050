"""Model code: NIMA and its backbones (CAN lives in can.py)."""

from nima_enhance.models.backbones import available_backbones
from nima_enhance.models.backbones import get_backbone_builder
from nima_enhance.models.backbones import register_backbone
from nima_enhance.models.nima import build_nima
