"""TPSMM checkpoints in the original layout: ``{network: state_dict, ..., "epoch": N}`` plus the
optimizers' states (``optimizer``, ``optimizer_bg_predictor``, ``optimizer_avd``), as the
original ``train.py`` and ``train_avd.py`` save them and as the published files are.

Every network is loaded with ``strict=True``; a checkpoint that does not fit its config fails with
every mismatch named. Two absences are allowed because the original code makes such files:
``bg_predictor`` (saved only from epoch ``bg_start`` on; a fresh predictor outputs the identity)
and ``avd_network`` (trained in a second stage; the model is then built without one).
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from ...errors import CheckpointError
from .config import TpsmmConfig
from .model import TpsmmModel

__all__ = ["load_original_checkpoint", "original_checkpoint", "read_original_checkpoint", "state_dict_mismatches"]

REQUIRED_NETWORKS = ("kp_detector", "dense_motion_network", "inpainting_network")
OPTIONAL_NETWORKS = ("bg_predictor", "avd_network")
#: Entries that are training state, not weights: the epoch and the optimizers' states.
_TRAINING_STATE_PREFIXES = ("epoch", "optimizer")


def state_dict_mismatches(network: nn.Module, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Shape mismatches first (the usual sign of a wrong config), then missing and extra keys."""
    expected = network.state_dict()
    problems = [f"shape of '{key}': checkpoint {list(state_dict[key].shape)}, model {list(value.shape)}"
                for key, value in expected.items()
                if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape)]
    problems += [f"missing key '{key}' {list(value.shape)}" for key, value in expected.items() if key not in state_dict]
    problems += [f"unexpected key '{key}' {list(getattr(value, 'shape', []))}"
                 for key, value in state_dict.items() if key not in expected]
    return problems


def load_original_checkpoint(checkpoint: Mapping[str, Any], config: TpsmmConfig,
                             source: str = "<checkpoint>") -> TpsmmModel:
    """A :class:`TpsmmModel` for ``config`` with the weights of an original-layout ``checkpoint``
    dictionary, in eval mode, its ``epoch`` the checkpoint's. ``source`` names it in errors.

    Raises :class:`~fomm.errors.CheckpointError` for a missing required network, an entry that is
    neither a network nor training state, an AVD network the config cannot build, and any state
    dict that does not fit (every problem listed).
    """
    _check_entries(checkpoint, config, source)
    has_avd = "avd_network" in checkpoint
    model = TpsmmModel(config, with_avd=has_avd)
    for name in model.networks:
        if name in checkpoint:
            _load_network(getattr(model, name), name, checkpoint[name], source)
    if "bg_predictor" in checkpoint and "bg_predictor" not in model.networks:
        warnings.warn(f"{source}: the checkpoint's 'bg_predictor' weights are not used: the config has "
                      f"common_params.bg false", stacklevel=2)
    model.epoch = int(checkpoint.get("epoch", 0))
    return model.eval()


def read_original_checkpoint(path: str | Path, config: TpsmmConfig) -> TpsmmModel:
    """:func:`load_original_checkpoint` of a file (read with ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        first_line = (str(error).strip().splitlines() or ["unreadable"])[0]
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line[:200]})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a TPSMM checkpoint (a {type(checkpoint).__name__}, not a dictionary)")
    return load_original_checkpoint(checkpoint, config, source=str(path))


def original_checkpoint(model: TpsmmModel, training_state: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The original layout of ``model``: its networks' state dicts, ``epoch``, and
    ``training_state`` (optimizer states) as given."""
    checkpoint: dict[str, Any] = {name: getattr(model, name).state_dict() for name in model.networks}
    checkpoint["epoch"] = model.epoch
    checkpoint.update(training_state or {})
    return checkpoint


def _check_entries(checkpoint: Mapping[str, Any], config: TpsmmConfig, source: str) -> None:
    missing = [name for name in REQUIRED_NETWORKS if name not in checkpoint]
    if missing:
        raise CheckpointError(f"{source}: not a TPSMM checkpoint: no {', '.join(repr(n) for n in missing)} weights "
                              f"(found {', '.join(map(str, list(checkpoint)[:8])) or 'nothing'})")
    known = REQUIRED_NETWORKS + OPTIONAL_NETWORKS
    unknown = [str(key) for key in checkpoint
               if key not in known and not str(key).startswith(_TRAINING_STATE_PREFIXES)]
    if unknown:
        raise CheckpointError(f"{source}: unexpected entries {', '.join(map(repr, unknown))} in a TPSMM checkpoint "
                              f"(it holds {', '.join(known)}, epoch and optimizer states)")
    if "avd_network" in checkpoint and config.model_params.avd_network_params is None:
        raise CheckpointError(f"{source}: the checkpoint has 'avd_network' weights but the config has no "
                              f"model_params.avd_network_params to build it")


def _load_network(network: nn.Module, name: str, state_dict: Any, source: str) -> None:
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{source}: '{name}' is a {type(state_dict).__name__}, not a state dict")
    problems = state_dict_mismatches(network, state_dict)
    if problems:
        listing = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(f"{source}: the '{name}' weights do not fit the model built from the config "
                              f"({len(problems)} problems):\n  {listing}{more}")
    network.load_state_dict(state_dict, strict=True)
