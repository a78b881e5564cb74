"""Saving and loading checkpoints of every model family: ours, and the original implementations'
``.pth.tar`` files.

Two layouts are read, both with ``torch.load(weights_only=True)`` because a checkpoint is
untrusted input:

* an original layout (``Logger.save_cpk`` of FOMM, TPSMM and MRAA alike): one state dict per
  network under its name (``kp_detector``, ``generator``, ``dense_motion_network``,
  ``region_predictor``, ...), optimizer states and ``epoch``, in torch's zip format or the legacy
  pre-1.6 format of the 2019 published files. The family follows from the networks' names
  (:func:`fomm.models.registry.family_of_checkpoint`); the config comes from the YAML file given
  beside it, or, when none is given, from the packaged published config whose networks have
  exactly the checkpoint's names and shapes, if only one does.
* ours: the same state dicts plus ``format``/``format_version``, ``family`` and the config as a
  plain dictionary, so a checkpoint alone rebuilds its model.

Writes go to a temporary file in the same folder that is then renamed over the target, so a crash
or Ctrl-C mid-save leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from .device import resolve_device
from .errors import CheckpointError, ConfigError
from .files import atomic_torch_save
from .models import MotionModel
from .models.registry import (FAMILIES, Family, build_model, config_from_dict, family_of, family_of_checkpoint,
                              load_config, matching_packaged_configs)

logger = logging.getLogger(__name__)

FORMAT_NAME = "fomm"
FORMAT_VERSION = 1

__all__ = ["CheckpointError", "CheckpointData", "load_checkpoint", "peek_family", "read_checkpoint", "save_checkpoint"]


@dataclass
class CheckpointData:
    """The contents of a checkpoint file, before any model is built.

    ``state_dicts`` maps network name to its state dict (a discriminator may be absent).
    ``training_state`` holds everything else (optimizer and scheduler states, ``epoch``...).
    ``config_origin`` says where ``config`` came from: ``given``, ``embedded``, or
    ``recognised as <packaged config>``.
    """

    path: Path
    family: Family
    state_dicts: dict[str, dict[str, Tensor]]
    training_state: dict[str, Any] = field(default_factory=dict)
    config: Any = None
    is_original: bool = False
    config_origin: str = "given"

    @property
    def epoch(self) -> int:
        return int(self.training_state.get("epoch", 0))


def read_checkpoint(path: str | Path, config: Any = None) -> CheckpointData:
    """Read a checkpoint file of any family and layout; ``config`` (a YAML path, a packaged
    config's name or a config object) overrides the embedded one. An original checkpoint without
    ``config`` gets the packaged published config its weights fit, when exactly one does."""
    path = Path(path)
    raw = _torch_load(path)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a checkpoint (found {_key_summary(raw)})")
    is_original = raw.get("format") != FORMAT_NAME
    if not is_original and int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer fomm (format version {raw['format_version']}, "
                              f"this one reads up to {FORMAT_VERSION}); upgrade fomm")
    family = _family(path, raw, is_original)
    state_dicts = {name: raw[name] for name in family.networks if isinstance(raw.get(name), Mapping)}
    resolved, origin = _resolve_config(path, raw, family, state_dicts, config, is_original)
    skip = set(family.networks) | {"format", "format_version", "config", "family"}
    training_state = {key: value for key, value in raw.items() if key not in skip}
    return CheckpointData(path=path, family=family, state_dicts=state_dicts, training_state=training_state,
                          config=resolved, is_original=is_original, config_origin=origin)


def peek_family(path: str | Path) -> Optional[str]:
    """The family of a checkpoint file, read without loading its tensors where the file allows
    (torch's zip format, memory-mapped); None when it is not a readable checkpoint."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # the legacy format cannot be mapped; anything else is not a checkpoint
        try:
            raw = _torch_load(Path(path))
        except CheckpointError:
            return None
    if not isinstance(raw, dict):
        return None
    try:
        return _family(Path(path), raw, raw.get("format") != FORMAT_NAME).name
    except CheckpointError:
        return None


def load_checkpoint(path: str | Path, config: Any = None,
                    device: Optional[torch.device | str] = None) -> MotionModel:
    """Build the model of a checkpoint and load its weights exactly (``strict=True``).

    ``config``: the YAML file (or packaged config name) of an original ``.pth.tar``; without it
    the published config its weights fit is used when exactly one does (logged), else the error
    asks for it. For our own checkpoints the embedded config is used unless one is given. The
    model is returned in eval mode on ``device`` (CPU by default), whatever device the checkpoint
    was saved from; its ``epoch`` attribute is the checkpoint's.
    """
    target = resolve_device(device) if device is not None else None  # a missing device: one line, not an assert
    data = read_checkpoint(path, config)
    if data.config_origin.startswith("recognised"):
        logger.warning("%s: no config given: %s (from the weights' names and shapes)", path, data.config_origin)
    model = build_model(data.config)
    load_state_dicts(model, data)
    model.epoch = data.epoch
    model.eval()
    return model.to(target) if target is not None else model


def load_state_dicts(model: MotionModel, data: CheckpointData) -> None:
    """Load the networks' weights of ``data`` into ``model``, failing with every mismatch named.
    Optional networks (a background predictor, an AVD network) the checkpoint has no weights for
    are removed from the model; others it lacks keep their fresh weights (an original FOMM file
    saved without its discriminator)."""
    problems: list[str] = []
    state_dicts = dict(data.state_dicts)
    for name in list(state_dicts):
        if getattr(model, name, None) is None and name in model.training_only:
            # A network the config does not build and inference never uses: the published TPSMM
            # mgif file holds background-predictor weights its config (bg: false) has no use for.
            logger.warning("%s: the '%s' weights are not used: the config builds no %s", data.path, name, name)
            del state_dicts[name]
    for name, state_dict in state_dicts.items():
        network: Optional[nn.Module] = getattr(model, name, None)
        if network is None:
            problems.append(f"the checkpoint has '{name}' weights, but the model built from the config has no "
                            f"{name} (is it the config the checkpoint was trained with?)")
            continue
        problems += [f"'{name}' {problem}"
                     for problem in state_dict_mismatches(network, upgrade_legacy_spectral_norm(dict(state_dict)))]
    if problems:
        listing = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(f"{data.path}: the weights do not fit the {data.family.title} model built from the "
                              f"config ({len(problems)} problems):\n  {listing}{more}")
    for name, state_dict in state_dicts.items():
        getattr(model, name).load_state_dict(upgrade_legacy_spectral_norm(dict(state_dict)), strict=True)
    for name in model.built_networks():
        if name not in state_dicts and name in model.optional_networks:
            model.remove_network(name)


def save_checkpoint(path: str | Path, model: MotionModel, training_state: Optional[dict[str, Any]] = None) -> Path:
    """Atomically write ``model`` (its networks, family and config) and ``training_state`` to ``path``.

    ``training_state`` may hold optimizer/scheduler state dicts, ``epoch`` and other values that
    ``torch.load(weights_only=True)`` accepts (tensors, numbers, strings, lists, dicts).
    """
    path = Path(path)
    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "family": model.family,
        "config": model.config.to_dict(),
        "epoch": model.epoch,
    }
    payload.update({name: getattr(model, name).state_dict() for name in model.built_networks()})
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
        raise CheckpointError(f"checkpoint not found: {path} (published checkpoints are not shipped with fomm; "
                              f"docs/families.md says where their authors publish each one)" if not path.exists()
                              else f"{path} is not a file (give the checkpoint file itself)")
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


def _family(path: Path, raw: dict, is_original: bool) -> Family:
    if not is_original:
        try:
            return family_of(config_from_dict(raw.get("config"), source=f"{path} (embedded config)"))
        except ConfigError as error:
            raise CheckpointError(f"{path}: embedded config unusable: {error}") from None
    family = family_of_checkpoint(raw)
    if family is None:
        expected = "; ".join(f"{name}: {', '.join(known.identifying_networks)}" for name, known in FAMILIES.items())
        raise CheckpointError(f"{path}: not a checkpoint of a known model family (expected the networks of one "
                              f"of them: {expected}; found {_key_summary(raw)})")
    return family


def _resolve_config(path: Path, raw: dict, family: Family, state_dicts: Mapping[str, Mapping[str, Tensor]],
                    config: Any, is_original: bool) -> tuple[Any, str]:
    if config is not None:
        resolved = config if not isinstance(config, (str, Path)) else load_config(config)
        if family_of(resolved) is not family:
            raise CheckpointError(f"{path} is a {family.title} checkpoint, but the config given is a "
                                  f"{family_of(resolved).title} one: give the config it was trained with")
        return resolved, "given"
    if not is_original:
        return config_from_dict(raw["config"], source=f"{path} (embedded config)"), "embedded"
    matches = matching_packaged_configs(family, state_dicts)
    configs = {name: load_config(name) for name in matches}
    if matches and len({_inference_signature(config) for config in configs.values()}) == 1:
        same = f" (the same model as {', '.join(matches[1:])})" if len(matches) > 1 else ""
        return configs[matches[0]], f"recognised as the published config {matches[0]}{same}"
    if matches:
        raise CheckpointError(f"{path} is an original {family.title} checkpoint, which has no config inside, and "
                              f"its weights fit several packaged configs ({', '.join(matches)}): pass the one it was "
                              f"trained with (config=... or --config)")
    raise CheckpointError(f"{path} is an original {family.title} checkpoint, which has no config inside, and no "
                          f"packaged config fits its weights: pass its YAML file (config=... or --config)")


def state_dict_mismatches(network: nn.Module, state_dict: Any) -> list[str]:
    """Shape mismatches first (the usual sign of a wrong config), then missing and extra keys."""
    if not isinstance(state_dict, Mapping):
        return [f"not a state dict (a {type(state_dict).__name__})"]
    expected = network.state_dict()
    problems = [f"shape of '{key}': checkpoint {list(state_dict[key].shape)}, model {list(value.shape)}"
                for key, value in expected.items()
                if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape)]
    problems += [f"missing key '{key}' {list(value.shape)}" for key, value in expected.items()
                 if key not in state_dict]
    problems += [f"unexpected key '{key}' {list(getattr(value, 'shape', []))}"
                 for key, value in state_dict.items() if key not in expected]
    return problems


def _inference_signature(config: Any) -> str:
    """What of a config shapes animation: the networks, the frame size and the motion defaults
    (two published configs equal in these are the same model at inference)."""
    data = config.to_dict()
    dataset = data.get("dataset_params") or {}
    return repr((data["model_params"], dataset.get("frame_shape"), data.get("animate_params")))


def _key_summary(raw: Any) -> str:
    if isinstance(raw, dict):
        return ", ".join(map(str, list(raw)[:8])) or "nothing"
    return type(raw).__name__
