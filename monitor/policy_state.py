"""The policy's per-model-version state as JSON-ready data, for the owner's checkpoints.

Open alerts (keyed by a tuple), streaks, baselines and the cooldown's last request must survive a takeover:
otherwise a new owner would re-fire every open alert and restart every streak, and a retraining request
could come a window later under another id. The conversion walks the dataclass's fields, so a field added
to :class:`~monitor.core.policy.PolicyState` travels without changes here (plain values, lists, dicts with
tuple keys, and nested dataclasses are supported).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from monitor.core import policy as policy_module
from monitor.core.policy import PolicyState


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        if any(isinstance(k, tuple) for k in value):
            return {"__items__": [[list(k) if isinstance(k, tuple) else k, _plain(v)] for k, v in value.items()]}
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def policy_state_to_dict(state: PolicyState) -> dict[str, Any]:
    """JSON-ready form of a policy state.

    >>> st = PolicyState(drift_streak=2, last_retrain=600.0)
    >>> policy_state_from_dict(policy_state_to_dict(st)) == st
    True
    """
    out: dict[str, Any] = _plain(state)
    return out


def _typed(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value)
    if origin is dict:
        ktype, vtype = args
        items = value["__items__"] if "__items__" in value else list(value.items())
        return {(tuple(k) if typing.get_origin(ktype) is tuple else k): _typed(vtype, v) for k, v in items}
    if origin is list:
        return [_typed(args[0], v) for v in value]
    return value


def _dataclass(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls, vars(policy_module))
    kwargs = {f.name: _typed(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def policy_state_from_dict(data: dict[str, Any]) -> PolicyState:
    """Inverse of :func:`policy_state_to_dict` (missing fields take their defaults)."""
    state: PolicyState = _dataclass(PolicyState, data)
    return state
