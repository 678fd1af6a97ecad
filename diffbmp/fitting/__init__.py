"""The machinery of a fit: schedules, the row-wise Adam, the loop, recording and the run folder.

The public entry points are :func:`diffbmp.fitting.image.fit` and :func:`diffbmp.fitting.image.run`.
"""

from .loop import FitDivergedError, Fitter, StepInfo
from .optim import RowAdam
from .runfolder import RunFolder
from .schedules import blur_at, lr_factor

__all__ = ["Fitter", "StepInfo", "FitDivergedError", "RowAdam", "RunFolder", "blur_at", "lr_factor"]
