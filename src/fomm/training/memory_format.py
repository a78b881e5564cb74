"""Channels-last training without channels-last files.

The networks train with channels-last (NHWC) 4-D parameters (see :mod:`fomm.training.precision`),
but what a run writes must not depend on it: state dicts and optimiser states are written
contiguous, as a contiguous run writes them, and states read back (ours, or an original
checkpoint's, always contiguous) are laid out like the parameters they belong to before the first
step, because the fused Adam kernels walk a parameter and its moments in memory order: with
different strides they would silently pair the wrong elements.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["contiguous_state_dicts", "contiguous_tensors", "match_state_layouts"]


def _contiguous_entries(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key, value in state_dict.items():
        # Parameters themselves (state_dict(keep_vars=True)) are handed over as they are.
        if key.startswith(prefix) and isinstance(value, Tensor) and not isinstance(value, nn.Parameter) \
                and not value.is_contiguous():
            state_dict[key] = value.contiguous()


def contiguous_state_dicts(module: nn.Module) -> None:
    """From now on, ``module.state_dict()`` (and so every checkpoint of it) holds contiguous
    tensors whatever the memory format of its parameters; names and values are unchanged."""
    # Public from torch 2.5 on; the private name, same signature, before.
    register = getattr(module, "register_state_dict_post_hook", None) or module._register_state_dict_hook
    register(_contiguous_entries)


def contiguous_tensors(value: Any) -> Any:
    """``value`` (nested dicts, lists and tuples, e.g. an optimiser's state dict) with every
    tensor made contiguous; the containers are copied, the rest is shared."""
    if isinstance(value, Tensor):
        return value.contiguous()
    if isinstance(value, dict):
        return {key: contiguous_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(contiguous_tensors(item) for item in value)
    return value


def match_state_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor of ``optimizer`` (Adam's moments) the strides of its
    parameter; values are unchanged. Needed after ``load_state_dict`` when the parameters are
    channels-last and the states were saved contiguous (or the other way round)."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter)
            if not state:
                continue
            for key, value in state.items():
                if isinstance(value, Tensor) and value.shape == parameter.shape and value.stride() != parameter.stride():
                    relaid = torch.empty_strided(parameter.shape, parameter.stride(), dtype=value.dtype,
                                                 device=value.device)
                    state[key] = relaid.copy_(value)
