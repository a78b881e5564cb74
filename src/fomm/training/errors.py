"""Why training stopped: errors a user's config, data or learning rates cause during a run.

Problems found in the config before training starts are :class:`fomm.errors.ConfigError`; these
are the ones only the run itself can find.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import UserError

__all__ = ["NonFiniteLossError", "TrainingError"]


class TrainingError(UserError):
    """Training cannot go on: the data does not fit the config, or the run diverged."""


class NonFiniteLossError(TrainingError):
    """A loss term became NaN or infinite; ``term`` and ``step`` say which and when.

    Raised before any parameter update of that step, so the last checkpoint (if any) holds the
    last good state.
    """

    def __init__(self, term: str, value: float, step: int, epoch: int, checkpoint: Optional[Path]) -> None:
        kept = (f"the last good checkpoint {checkpoint} was kept" if checkpoint is not None and checkpoint.is_file()
                else "no checkpoint was written")
        super().__init__(f"loss term '{term}' is {value} at step {step} (epoch {epoch}); training stopped before "
                         f"updating the parameters and {kept}. Lower the learning rates, set "
                         f"train_params.grad_clip, or check the data.")
        self.term, self.value, self.step, self.epoch = term, value, step, epoch
