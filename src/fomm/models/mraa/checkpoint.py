"""The MRAA checkpoint layout: the original repository's ``torch.save`` dictionary.

An original checkpoint is ``{"region_predictor": state_dict, "bg_predictor": ..., "generator":
..., "avd_network": ..., "epoch": int, "optimizer_reconstruction": ..., "optimizer_avd": ...}``.
The state dicts load into :class:`~fomm.models.mraa.MraaModel` strictly: every missing,
unexpected or misshapen tensor is named in one :class:`~fomm.errors.CheckpointError`.
``region_predictor`` and ``generator`` are required; a checkpoint of the reconstruction stage has
no ``avd_network``, and one may lack ``bg_predictor``: the model then drops that network instead
of keeping random weights (``has_avd`` is False without an AVD network).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from ...errors import CheckpointError
from .config import MraaConfig, load_mraa_config
from .model import MraaModel, build_mraa_model

__all__ = ["REQUIRED_NETWORKS", "load_mraa_checkpoint", "load_mraa_state_dicts", "state_dict_mismatches"]

#: Networks every MRAA checkpoint must hold (animation needs them).
REQUIRED_NETWORKS = ("region_predictor", "generator")
#: How many problems a CheckpointError lists before summarising the rest.
_LISTED_PROBLEMS = 30


def load_mraa_state_dicts(model: MraaModel, checkpoint: Mapping[str, Any], source: str = "<checkpoint>") -> None:
    """Load an original-layout checkpoint dictionary into ``model``, strictly.

    Networks of the model that the checkpoint lacks are an error when required
    (:data:`REQUIRED_NETWORKS`), else removed from the model. ``checkpoint["epoch"]``, when
    present, becomes ``model.epoch``. ``source`` names the checkpoint in error messages.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{source}: not an MRAA checkpoint (a {type(checkpoint).__name__}, expected a "
                              f"dictionary of state dicts)")
    problems: list[str] = []
    for name in model.networks:
        if name not in checkpoint and name in REQUIRED_NETWORKS:
            problems.append(f"missing network '{name}' (the checkpoint has: {', '.join(map(str, checkpoint))})")
    for name in type(model).networks:
        if name in checkpoint and name not in model.networks:
            problems.append(f"the checkpoint has '{name}' weights but the config builds no {name} "
                            f"(model_params.avd_network_params)")
    for name in model.networks:
        if name in checkpoint:
            problems += [f"{name}: {problem}" for problem in state_dict_mismatches(getattr(model, name), checkpoint[name])]
    if problems:
        listing = "\n  ".join(problems[:_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - _LISTED_PROBLEMS} more" if len(problems) > _LISTED_PROBLEMS else ""
        raise CheckpointError(f"{source}: the weights do not fit the MRAA model built from the config "
                              f"({len(problems)} problems):\n  {listing}{more}")
    for name in list(model.networks):
        if name in checkpoint:
            getattr(model, name).load_state_dict(checkpoint[name], strict=True)
        else:
            model.remove_network(name)
    model.epoch = int(checkpoint.get("epoch", 0))


def state_dict_mismatches(network: nn.Module, state_dict: Any) -> list[str]:
    """Shape mismatches first (the usual sign of a wrong config), then missing and unexpected keys."""
    if not isinstance(state_dict, Mapping):
        return [f"not a state dict (a {type(state_dict).__name__})"]
    expected = network.state_dict()
    problems = [f"shape of '{key}': checkpoint {list(_shape(state_dict[key]))}, model {list(value.shape)}"
                for key, value in expected.items() if key in state_dict and _shape(state_dict[key]) != value.shape]
    problems += [f"missing key '{key}' {list(value.shape)}" for key, value in expected.items() if key not in state_dict]
    problems += [f"unexpected key '{key}' {list(_shape(value))}" for key, value in state_dict.items()
                 if key not in expected]
    return problems


def _shape(value: Any) -> torch.Size:
    return value.shape if isinstance(value, Tensor) else torch.Size([])


def load_mraa_checkpoint(path: str | Path, config: str | Path | MraaConfig,
                         device: Optional[torch.device | str] = None) -> MraaModel:
    """An :class:`MraaModel` built from ``config`` (a path, a packaged name such as
    ``mraa-vox256``, or a config) with the weights of the original-layout checkpoint ``path``."""
    path = Path(path)
    if not isinstance(config, MraaConfig):
        config = load_mraa_config(config)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file: say which, keep the reason
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''})") from None
    model = build_mraa_model(config)
    load_mraa_state_dicts(model, checkpoint, source=str(path))
    return model.to(device) if device is not None else model
