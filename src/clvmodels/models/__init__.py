"""Maximum-likelihood models: one module per model, formulas as pure functions.

BTYD (transaction) models, and the contractual (subscription) models SBG and BDW."""

from .bdw import BDW
from .bgbb import BGBB
from .bgnbd import BGNBD
from .cnbd import BGCNBD, MBGCNBD
from .gammagamma import GammaGamma
from .ggomnbd import GGomNBD
from .mbgnbd import MBGNBD
from .paretonbd import ParetoNBD
from .paretonbd_dyncov import ParetoNBDDynCov
from .sbg import SBG

__all__ = [
    "BDW", "BGBB", "BGCNBD", "BGNBD", "GGomNBD", "GammaGamma", "MBGCNBD", "MBGNBD", "ParetoNBD",
    "ParetoNBDDynCov", "SBG",
]
