"""Small typed groups of batched tensors: what flows between a model family's networks.

A :class:`TensorBundle` is a dataclass whose fields are tensors with the batch first (or tuples of
such tensors, or None). Keypoints, a TPS model's control points, an MRAA model's region
parameters, a source's encoded features: each is one. The base gives them the operations the
animation pipeline needs without knowing what is inside: move them (``to``), select and
broadcast along the batch (``[i]``, ``expand``), join batches (``cat``), and flatten them to a
plain tuple of tensors and back (``tensors`` / ``from_tensors``), which is how the exported ONNX
graphs take and return them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence, TypeVar

import torch
from torch import Tensor

__all__ = ["TensorBundle"]

B = TypeVar("B", bound="TensorBundle")


def _map_field(value: Any, function: Callable[[Tensor], Tensor]) -> Any:
    if value is None:
        return None
    if isinstance(value, Tensor):
        return function(value)
    if isinstance(value, (tuple, list)):
        return tuple(function(item) for item in value)
    return value  # plain numbers and strings ride along unchanged


class TensorBundle:
    """Base of dataclasses of batch-first tensors (see the module docstring).

    Subclasses are ``@dataclass`` classes; fields hold a ``Tensor`` ``(B, ...)``, a tuple of them,
    or None. Every method returns a new bundle of the same class.
    """

    def _fields(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}  # type: ignore[arg-type]

    def _map(self: B, function: Callable[[Tensor], Tensor]) -> B:
        return type(self)(**{name: _map_field(value, function) for name, value in self._fields().items()})

    def to(self: B, *args, **kwargs) -> B:
        return self._map(lambda tensor: tensor.to(*args, **kwargs))

    def float(self: B) -> B:
        """Floating-point tensors in fp32 (integer tensors unchanged)."""
        return self._map(lambda tensor: tensor.float() if tensor.is_floating_point() else tensor)

    def detach(self: B) -> B:
        return self._map(Tensor.detach)

    def __getitem__(self: B, index) -> B:
        """Select batch elements, e.g. ``bundle[0:1]``."""
        return self._map(lambda tensor: tensor[index])

    def expand(self: B, batch: int) -> B:
        """Broadcast a bundle of batch 1 to ``batch`` elements without copying."""
        if self.batch_size == batch:
            return self
        return self._map(lambda tensor: tensor.expand(batch, *tensor.shape[1:]))

    @property
    def batch_size(self) -> int:
        return self.tensors()[0].shape[0]

    @classmethod
    def cat(cls: type[B], parts: Sequence[B]) -> B:
        """Concatenate bundles of one class along the batch."""
        first = parts[0]
        joined: dict[str, Any] = {}
        for name, value in first._fields().items():
            if value is None or not isinstance(value, (Tensor, tuple, list)):
                joined[name] = value
            elif isinstance(value, Tensor):
                joined[name] = torch.cat([getattr(part, name) for part in parts])
            else:
                joined[name] = tuple(torch.cat([getattr(part, name)[i] for part in parts]) for i in range(len(value)))
        return type(first)(**joined)

    def tensors(self) -> tuple[Tensor, ...]:
        """Every tensor, in field order (tuples flattened, None skipped)."""
        flat: list[Tensor] = []
        for value in self._fields().values():
            if isinstance(value, Tensor):
                flat.append(value)
            elif isinstance(value, (tuple, list)):
                flat.extend(value)
        return tuple(flat)

    def layout(self) -> tuple[tuple[str, Optional[int]], ...]:
        """``(field, count)`` pairs describing :meth:`tensors`: count None for a single tensor, the
        tuple's length for a tuple field; absent fields are left out."""
        found = []
        for name, value in self._fields().items():
            if isinstance(value, Tensor):
                found.append((name, None))
            elif isinstance(value, (tuple, list)):
                found.append((name, len(value)))
        return tuple(found)

    @classmethod
    def from_tensors(cls: type[B], tensors: Sequence[Tensor], layout: tuple[tuple[str, Optional[int]], ...]) -> B:
        """The inverse of :meth:`tensors` given the :meth:`layout` it came with."""
        values: dict[str, Any] = {field.name: None for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        position = 0
        for name, count in layout:
            if count is None:
                values[name] = tensors[position]
                position += 1
            else:
                values[name] = tuple(tensors[position:position + count])
                position += count
        if position != len(tensors):
            raise ValueError(f"{cls.__name__}: layout takes {position} tensors, got {len(tensors)}")
        return cls(**values)
