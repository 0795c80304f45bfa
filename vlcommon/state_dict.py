"""One protocol for every weight converter, in the style of torchtitan's ``StateDictAdapter``: an object per source
format that maps its tensors onto ours and, where the format can be written, back.

    adapter.to_ours(theirs) -> ours            every adapter                    (:class:`StateDictAdapter`)
    adapter.from_ours(ours) -> theirs          where the format can be written  (:class:`ReversibleStateDictAdapter`)
    adapter.config_to_ours(their_config)       where the format carries a config (:class:`ConfigAdapter`);
    adapter.config_from_ours(our_config)       and the reverse where it can be written

Adapters rename, fuse, split and reshape tensors; they never build or load a model. Which module the result loads
into, and how strictly, stays with each system's loader, so that its checks and messages stay where they are.

A format that holds tensors we have no place for (a CLIP text tower, a pooler, a parameter the original created and
never used) derives from :class:`PartialStateDictAdapter`: its ``split`` maps once and names what it left, so that
the loaders report the leftovers rather than drop them unseen; ``to_ours`` is the mapped half.

Both systems implement this protocol (``llava.model.convert``, ``managertower.convert``); this module imports
neither.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

StateDict = dict[str, torch.Tensor]


@runtime_checkable
class StateDictAdapter(Protocol):
    """One source format's weights, under our names and in our layouts."""

    def to_ours(self, state_dict: StateDict) -> StateDict: ...


@runtime_checkable
class ReversibleStateDictAdapter(StateDictAdapter, Protocol):
    """A format we can also write: ``to_ours(from_ours(ours)) == ours`` for every state our model has."""

    def from_ours(self, state_dict: StateDict) -> StateDict: ...


@runtime_checkable
class ConfigAdapter(Protocol):
    """A format whose checkpoints carry a config: ours from theirs, or an error naming what ours cannot express."""

    def config_to_ours(self, config: Any) -> Any: ...


class PartialStateDictAdapter:
    """Base of the adapters whose formats hold tensors we have no place for: subclasses implement :meth:`split`."""

    def split(self, state_dict: StateDict) -> tuple[StateDict, list[str]]:
        """(our state dict, the source keys left out of it)."""
        raise NotImplementedError

    def to_ours(self, state_dict: StateDict) -> StateDict:
        return self.split(state_dict)[0]
