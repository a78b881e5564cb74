"""Training: the loop (:class:`Trainer`), the networks-plus-losses modules it optimises, its
arithmetic (bf16 autocast, channels-last: :mod:`.precision`, :mod:`.memory_format`), the random
states of a run, and multi-process training.

    from fomm.training import Trainer
    result = Trainer(load_config("configs/sprites-64.yaml"), "runs/sprites").train()
"""

from .errors import NonFiniteLossError, TrainingError
from .full_models import DiscriminatorFullModel, GeneratorFullModel
from .trainer import CHECKPOINT_NAME, Trainer, TrainResult

__all__ = [
    "CHECKPOINT_NAME",
    "DiscriminatorFullModel",
    "GeneratorFullModel",
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "TrainingError",
]
