"""Saving and loading checkpoints: ours, and the original implementation's ``.pth.tar`` files.

Two layouts are read, both with ``torch.load(weights_only=True)`` because a checkpoint is
untrusted input:

* the original ``Logger.save_cpk`` layout: ``generator``, ``kp_detector``, ``discriminator``
  state dicts, optimizer states and ``epoch``, in torch's zip format or the legacy pre-1.6 format
  of the 2019 published files. Its config comes from the YAML file given beside it.
* ours: the same state dicts plus ``format``/``format_version`` and the config as a plain
  dictionary, so a checkpoint alone rebuilds its model.

Writes go to a temporary file in the same folder that is then renamed over the target, so a crash
or Ctrl-C mid-save leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from .config import FommConfig, load_config
from .errors import CheckpointError, ConfigError
from .io import atomic_torch_save
from .models import FommModel, build_model

FORMAT_NAME = "fomm"
FORMAT_VERSION = 1
NETWORKS = ("generator", "kp_detector", "discriminator")

__all__ = ["CheckpointError", "CheckpointData", "read_checkpoint", "load_checkpoint", "save_checkpoint"]


@dataclass
class CheckpointData:
    """The contents of a checkpoint file, before any model is built.

    ``state_dicts`` maps network name to its state dict (``discriminator`` may be absent).
    ``training_state`` holds everything else (optimizer and scheduler states, ``epoch``...).
    ``config`` is None for an original checkpoint read without a YAML file.
    """

    path: Path
    state_dicts: dict[str, dict[str, Tensor]]
    training_state: dict[str, Any] = field(default_factory=dict)
    config: Optional[FommConfig] = None
    is_original: bool = False

    @property
    def epoch(self) -> int:
        return int(self.training_state.get("epoch", 0))


def read_checkpoint(path: str | Path, config: Optional[str | Path | FommConfig] = None) -> CheckpointData:
    """Read a checkpoint file of either layout; ``config`` (a YAML path or a config) overrides
    the embedded one and is required for original checkpoints."""
    path = Path(path)
    raw = _torch_load(path)
    if not isinstance(raw, dict) or not any(name in raw for name in NETWORKS):
        raise CheckpointError(f"{path}: not a FOMM checkpoint (expected keys {', '.join(NETWORKS)}; "
                              f"found {_key_summary(raw)})")
    for name in ("generator", "kp_detector"):
        if name not in raw:
            raise CheckpointError(f"{path}: checkpoint has no '{name}' state dict")

    is_original = raw.get("format") != FORMAT_NAME
    if not is_original and int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer fomm (format version {raw['format_version']}, "
                              f"this one reads up to {FORMAT_VERSION}); upgrade fomm")
    resolved = _resolve_config(path, raw, config, is_original)
    state_dicts = {name: raw[name] for name in NETWORKS if name in raw}
    skip = set(NETWORKS) | {"format", "format_version", "config"}
    training_state = {key: value for key, value in raw.items() if key not in skip}
    return CheckpointData(path=path, state_dicts=state_dicts, training_state=training_state,
                          config=resolved, is_original=is_original)


def load_checkpoint(path: str | Path, config: Optional[str | Path | FommConfig] = None,
                    device: Optional[torch.device | str] = None) -> FommModel:
    """Build the model of a checkpoint and load its weights exactly (``strict=True``).

    ``config``: the YAML file of an original ``.pth.tar`` (required for those); for our own
    checkpoints the embedded config is used unless one is given. The model is returned in eval
    mode on ``device`` (CPU by default), whatever device the checkpoint was saved from; its
    ``epoch`` attribute is the checkpoint's.
    """
    data = read_checkpoint(path, config)
    assert data.config is not None
    model = build_model(data.config)
    load_state_dicts(model, data)
    model.epoch = data.epoch
    model.eval()
    return model.to(device) if device is not None else model


def load_state_dicts(model: FommModel, data: CheckpointData) -> None:
    """Load the networks' weights of ``data`` into ``model``, failing with every mismatch named."""
    for name, state_dict in data.state_dicts.items():
        network: nn.Module = getattr(model, name)
        state_dict = upgrade_legacy_spectral_norm(dict(state_dict))
        problems = _state_dict_mismatches(network, state_dict)
        if problems:
            listing = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise CheckpointError(f"{data.path}: the '{name}' weights do not fit the model built from the "
                                  f"config ({len(problems)} problems):\n  {listing}{more}")
        network.load_state_dict(state_dict, strict=True)


def save_checkpoint(path: str | Path, model: FommModel, training_state: Optional[dict[str, Any]] = None) -> Path:
    """Atomically write ``model`` (its three networks and config) and ``training_state`` to ``path``.

    ``training_state`` may hold optimizer/scheduler state dicts, ``epoch`` and other values that
    ``torch.load(weights_only=True)`` accepts (tensors, numbers, strings, lists, dicts).
    """
    path = Path(path)
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "epoch": model.epoch,
    }
    payload.update({name: getattr(model, name).state_dict() for name in NETWORKS})
    payload.update(training_state or {})
    atomic_torch_save(payload, path)
    return path


def upgrade_legacy_spectral_norm(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rewrite spectral-norm entries of checkpoints from torch before 1.0 to the current names.

    Those stored ``<name>.weight`` (the normalised weight) beside ``weight_orig`` and ``weight_u``
    and had no ``weight_v``. As torch's own upgrade does, ``v`` is solved so that
    ``u . (W v) = sigma`` with ``sigma = mean(weight_orig / weight)``; the stale ``weight`` goes.
    """
    for key in [k for k in state_dict if k.endswith(".weight_orig")]:
        prefix = key[: -len("_orig")]
        if prefix + "_v" in state_dict:
            state_dict.pop(prefix, None)
            continue
        weight_orig, u = state_dict[key], state_dict[prefix + "_u"]
        matrix = weight_orig.reshape(weight_orig.shape[0], -1).double()
        u64 = u.double()
        normalised = state_dict.pop(prefix, None)
        if normalised is not None:
            sigma = (weight_orig / normalised).double().mean()
            v = torch.linalg.pinv(matrix.t() @ matrix) @ matrix.t() @ u64
            v = v * (sigma / torch.dot(u64, matrix @ v))
        else:
            v = matrix.t() @ u64
            v = v / v.norm().clamp_min(1e-12)
        state_dict[prefix + "_v"] = v.to(weight_orig.dtype)
    return state_dict


# --------------------------------------------------------------------------------------------


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}" if not path.exists() else
                              f"{path} is not a file (give the checkpoint file itself)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(str(error))
        if reason.startswith("Unsupported global"):
            reason = reason.split(" was not an allowed global")[0]
            raise CheckpointError(f"{path}: refused: the file holds Python objects, and checkpoints may only hold "
                                  f"tensors and plain values ({reason})") from None
        raise CheckpointError(f"{path}: not a checkpoint (unreadable as one: {reason})") from None
    except Exception as error:  # corrupt bytes make the unpickler fail in many ways (IndexError, KeyError...)
        raise CheckpointError(f"{path}: not a checkpoint, or a truncated or corrupt one "
                              f"({type(error).__name__}: {error})") from None


def _unpickler_reason(message: str) -> str:
    """The one informative line of torch's long weights-only refusal (which otherwise advises
    loading with ``weights_only=False``, the unsafe thing)."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\s*\n|\nCheck|$)", message, re.S)
    reason = found.group(1) if found else message.strip().splitlines()[0] if message.strip() else "unknown"
    return " ".join(reason.split())[:200].rstrip(".")


def _resolve_config(path: Path, raw: dict, config: Optional[str | Path | FommConfig],
                    is_original: bool) -> FommConfig:
    if isinstance(config, FommConfig):
        return config
    if config is not None:
        return load_config(config)
    if is_original:
        raise CheckpointError(f"{path} is an original FOMM checkpoint, which has no config inside: "
                              f"pass its YAML file (config=... or --config), e.g. configs/vox-256.yaml")
    try:
        return FommConfig.from_dict(raw["config"], source=f"{path} (embedded config)")
    except (KeyError, ConfigError) as error:
        raise CheckpointError(f"{path}: embedded config unusable: {error}") from None


def _state_dict_mismatches(network: nn.Module, state_dict: dict[str, Tensor]) -> list[str]:
    """Shape mismatches first (the usual sign of a wrong config), then missing and extra keys."""
    expected = network.state_dict()
    problems = [f"shape of '{key}': checkpoint {list(state_dict[key].shape)}, model {list(value.shape)}"
                for key, value in expected.items()
                if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape)]
    problems += [f"missing key '{key}' {list(value.shape)}" for key, value in expected.items()
                 if key not in state_dict]
    problems += [f"unexpected key '{key}' {list(getattr(value, 'shape', []))}"
                 for key, value in state_dict.items() if key not in expected]
    return problems


def _key_summary(raw: Any) -> str:
    if isinstance(raw, dict):
        return ", ".join(map(str, list(raw)[:8])) or "nothing"
    return type(raw).__name__
