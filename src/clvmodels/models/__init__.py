"""Maximum-likelihood BTYD models: one module per model, formulas as pure functions."""

from .bgbb import BGBB
from .bgnbd import BGNBD
from .gammagamma import GammaGamma
from .ggomnbd import GGomNBD
from .mbgnbd import MBGNBD
from .paretonbd import ParetoNBD

__all__ = ["BGBB", "BGNBD", "GammaGamma", "GGomNBD", "MBGNBD", "ParetoNBD"]
