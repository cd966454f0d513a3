"""diffdyn.nca: neural cellular automata."""

from diffdyn.nca.model import NCA, AbstractNCA
from diffdyn.nca.variants import KANCA, GatedNCA, MultiScaleNCA

__all__ = ["AbstractNCA", "NCA", "GatedNCA", "MultiScaleNCA", "KANCA"]
