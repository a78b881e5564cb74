"""Training: the loop (:class:`Trainer`) that follows a family's training plan (the plans and their
networks-plus-losses modules live with each family, in ``fomm.models.<family>.objective``), its
arithmetic (bf16 autocast, channels-last: :mod:`.precision`, :mod:`.memory_format`), the random
states of a run, and multi-process training.

    from fomm.training import Trainer
    result = Trainer(load_config("configs/sprites-64.yaml"), "runs/sprites").train()
"""

from .errors import NonFiniteLossError, TrainingError
from .trainer import CHECKPOINT_NAME, Trainer, TrainResult

__all__ = [
    "CHECKPOINT_NAME",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "TrainingError",
]
