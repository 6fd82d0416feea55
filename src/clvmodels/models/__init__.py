"""Maximum-likelihood BTYD models: one module per model, formulas as pure functions."""

from .bgbb import BGBB
from .bgnbd import BGNBD
from .cnbd import BGCNBD, MBGCNBD
from .gammagamma import GammaGamma
from .mbgnbd import MBGNBD
from .paretonbd import ParetoNBD

__all__ = ["BGBB", "BGCNBD", "BGNBD", "GammaGamma", "MBGCNBD", "MBGNBD", "ParetoNBD"]
