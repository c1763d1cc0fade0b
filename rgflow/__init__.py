"""rgflow: RG-Flow (Hu, Wu, You, Olshausen, Chen; arXiv:2010.00029), reproduced.

Importing rgflow reads no argv, sets no dtype or device and prints nothing.
"""

from .lattice import RGLattice
from .model import PRESETS, RGFlow, RGFlowConfig, get_preset
from .priors import GaussianPrior, LaplacePrior, make_prior

__all__ = [
    "RGLattice",
    "RGFlow",
    "RGFlowConfig",
    "PRESETS",
    "get_preset",
    "GaussianPrior",
    "LaplacePrior",
    "make_prior",
]
__version__ = "0.1.0"
