"""The models: shared layers, the base both share, one file per model, the losses."""

from .base import SelfAttentiveRecommender
from .lightsans import LightSANs
from .losses import CRITERIA, Criterion
from .sasrec import SASRec

__all__ = ["CRITERIA", "Criterion", "LightSANs", "SASRec", "SelfAttentiveRecommender"]
