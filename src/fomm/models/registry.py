"""The model families, by name: each one's config schema, model class, checkpoint layout and how
to recognise it, as timm maps a model name to its config and weights.

This is the one place that knows which families exist. Everything else takes a
:class:`~fomm.models.family.MotionModel` and calls its methods, or asks this module:

>>> config = load_config("tpsmm-vox-256")            # the family follows from the YAML layout
>>> model = build_model(config)                       # a TpsmmModel
>>> family_of_checkpoint({"kp_detector": ..., "dense_motion_network": ...}).name
'tpsmm'

A family is recognised from a config by the keys its original YAML layout has, and from an
original checkpoint by its networks' names. Among the packaged (published) configs of a family, the
one a checkpoint was trained with is recognised from its weights' names and shapes, when exactly
one fits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor

from ..config import FommConfig, PACKAGED_CONFIGS, read_config_file
from ..device import resolve_device
from ..errors import ConfigError
from .family import MotionModel, TrainingPlan
from .fomm import FommModel
from .fomm.objective import training_plan as fomm_training_plan
from .mraa import MraaConfig, MraaModel
from .mraa.objective import training_plan as mraa_training_plan
from .tpsmm import TpsmmConfig, TpsmmModel
from .tpsmm.objective import training_plan as tpsmm_training_plan

__all__ = ["Family", "FAMILIES", "build_model", "config_from_dict", "family_of", "family_of_checkpoint",
           "family_of_config_data", "load_config", "matching_packaged_configs", "packaged_configs"]


@dataclass(frozen=True)
class Family:
    """What the package knows of one model family.

    ``networks``: the state dicts of an original checkpoint, by name (those listed in
    ``identifying_networks`` are always there and tell the family apart). ``config_class`` reads
    the family's YAML layout (``from_dict(data, source)``, ``to_dict()``); ``is_config`` tells
    whether a parsed YAML mapping has that layout. ``training_plan(model, stage, perceptual)``
    says how a model of the family trains (see :class:`~fomm.models.family.TrainingPlan`;
    ``perceptual()`` gives the frozen VGG19 of the perceptual loss, called only when needed).
    """

    name: str
    label: str
    title: str
    paper: str
    model_class: type[MotionModel]
    config_class: type
    identifying_networks: tuple[str, ...]
    is_config: Callable[[Mapping[str, Any]], bool]
    training_plan: Callable[[Any, str, Callable[[], Any]], TrainingPlan]

    @property
    def networks(self) -> tuple[str, ...]:
        return self.model_class.networks

    def build(self, config: Any) -> MotionModel:
        return self.model_class(config)


def _model_params(data: Mapping[str, Any]) -> Mapping[str, Any]:
    params = data.get("model_params") if isinstance(data, Mapping) else None
    return params if isinstance(params, Mapping) else {}


def _common_params(data: Mapping[str, Any]) -> Mapping[str, Any]:
    common = _model_params(data).get("common_params")
    return common if isinstance(common, Mapping) else {}


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


register(Family(
    name="fomm", label="FOMM", title="First Order Motion Model", paper="Siarohin et al., NeurIPS 2019",
    model_class=FommModel, config_class=FommConfig, identifying_networks=("kp_detector", "generator"),
    is_config=lambda data: "num_kp" in _common_params(data) or "kp_detector_params" in _model_params(data),
    training_plan=fomm_training_plan))


register(Family(
    name="tpsmm", label="TPSMM", title="Thin-Plate Spline Motion Model (TPSMM)", paper="Zhao & Zhang, CVPR 2022",
    model_class=TpsmmModel, config_class=TpsmmConfig,
    identifying_networks=("kp_detector", "dense_motion_network", "inpainting_network"),
    is_config=lambda data: "num_tps" in _common_params(data), training_plan=tpsmm_training_plan))


register(Family(
    name="mraa", label="MRAA", title="Motion Representations for Articulated Animation (MRAA)", paper="Siarohin et al., CVPR 2021",
    model_class=MraaModel, config_class=MraaConfig, identifying_networks=("region_predictor", "generator"),
    is_config=lambda data: "num_regions" in _model_params(data) or "region_predictor_params" in _model_params(data),
    training_plan=mraa_training_plan))


def family_of(model_or_config: Any) -> Family:
    """The family of a model or of a config object."""
    for family in FAMILIES.values():
        if isinstance(model_or_config, (family.model_class, family.config_class)):
            return family
    raise TypeError(f"not a model or config of a known family: {type(model_or_config).__name__}")


def family_of_config_data(data: Any, source: str = "<dict>") -> Family:
    """The family whose YAML layout ``data`` (a parsed config) follows; ConfigError otherwise."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a config must be a mapping of sections, got {type(data).__name__}")
    found = [family for family in FAMILIES.values() if family.is_config(data)]
    if len(found) != 1:
        layouts = "; ".join(f"{family.name}: {family.title}" for family in FAMILIES.values())
        raise ConfigError(f"{source}: not the config layout of a known model family ({layouts}): "
                          f"model_params must hold common_params.num_kp (FOMM), common_params.num_tps "
                          f"(TPSMM) or num_regions (MRAA)")
    return found[0]


def config_from_dict(data: Any, source: str = "<dict>") -> Any:
    """Validate a parsed config of any family; ``source`` names it in error messages."""
    return family_of_config_data(data, source).config_class.from_dict(data, source=source)


def load_config(path: Any) -> Any:
    """Read a YAML config of any family in its original layout; a packaged config's name
    (``vox-256``, ``tpsmm-vox-256``, ``mraa-vox256``) also works."""
    data, resolved = read_config_file(path)
    return config_from_dict(data, source=str(resolved))


def build_model(config: Any, device: Optional[torch.device | str] = None) -> MotionModel:
    """Freshly initialised networks for ``config`` (on ``device``, CPU by default)."""
    model = family_of(config).build(config)
    return model.to(resolve_device(device)) if device is not None else model


def family_of_checkpoint(state: Mapping[str, Any]) -> Optional[Family]:
    """The family whose networks an original checkpoint ``{network name: state dict, ...}`` holds,
    or None."""
    for family in FAMILIES.values():
        if all(isinstance(state.get(name), Mapping) for name in family.identifying_networks):
            return family
    return None


@functools.lru_cache(maxsize=None)
def _packaged() -> tuple[tuple[str, str, Any], ...]:
    """``(name, family, parsed config)`` of every packaged config."""
    found = []
    for path in sorted(PACKAGED_CONFIGS.glob("*.yaml")):
        data, _ = read_config_file(path)
        found.append((path.stem, family_of_config_data(data, str(path)).name, config_from_dict(data, str(path))))
    return tuple(found)


def packaged_configs(family: Optional[str] = None) -> list[str]:
    """Names of the packaged configs (of one family)."""
    return [name for name, owner, _ in _packaged() if family in (None, owner)]


@functools.lru_cache(maxsize=None)
def _shapes(name: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """State-dict names and shapes of the networks a packaged config builds (on the meta device:
    no memory, no time)."""
    config = next(config for packaged, _, config in _packaged() if packaged == name)
    with torch.device("meta"):
        model = build_model(config)
    return {network: {key: tuple(value.shape) for key, value in getattr(model, network).state_dict().items()}
            for network in model.networks if getattr(model, network, None) is not None}


def matching_packaged_configs(family: Family, state: Mapping[str, Mapping[str, Tensor]]) -> list[str]:
    """The packaged configs of ``family`` whose networks have exactly the names and shapes of the
    state dicts in ``state`` (networks absent from ``state``, such as a discriminator an original
    file was saved without, are not compared)."""
    matches = []
    for name in packaged_configs(family.name):
        expected = _shapes(name)
        if all(network in expected and {key: tuple(value.shape) for key, value in weights.items()} == expected[network]
               for network, weights in state.items()):
            matches.append(name)
    return matches
