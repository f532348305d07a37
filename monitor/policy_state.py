"""The policy's per-model-version state as JSON-ready data, for the owner's checkpoints.

Open alerts (keyed by a tuple), streaks, baselines and the cooldown's last request must survive a takeover:
otherwise a new owner would re-fire every open alert and restart every streak, and a retraining request
could come a window later under another id. The conversion walks the dataclass's fields, so a field added
to :class:`~monitor.core.policy.PolicyState` travels without changes here (plain values, lists, dicts with
tuple keys, and nested dataclasses are supported).
"""

from __future__ import annotations

import dataclasses
import types
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

    >>> from monitor.core.policy import _AlertState
    >>> key = ("FeatureDrift", "x", "psi", (("segment", "country=PL"),), "warning")
    >>> st = PolicyState(alerts={key: _AlertState({"alertname": "FeatureDrift"}, 600.0, 300.0)}, drift_streak=2)
    >>> import orjson
    >>> policy_state_from_dict(orjson.loads(orjson.dumps(policy_state_to_dict(st)))) == st
    True
    """
    out: dict[str, Any] = _plain(state)
    return out


def _typed(tp: Any, value: Any) -> Any:
    """``value`` (from JSON) as type ``tp``: lists back to tuples where the type says so, recursively."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value)
    if value is None:
        return None
    if origin is dict:
        ktype, vtype = args
        items = value["__items__"] if "__items__" in value else list(value.items())
        return {_typed(ktype, k): _typed(vtype, v) for k, v in items}
    if origin is list:
        return [_typed(args[0], v) for v in value]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], v) for v in value)
        return tuple(_typed(t, v) for t, v in zip(args, value, strict=True))
    if origin in (typing.Union, types.UnionType):
        for option in args:
            if option is not type(None):
                return _typed(option, value)
    return value


def _dataclass(cls: type, data: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls, vars(policy_module))
    kwargs = {f.name: _typed(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def policy_state_from_dict(data: dict[str, Any]) -> PolicyState:
    """Inverse of :func:`policy_state_to_dict` (missing fields take their defaults)."""
    state: PolicyState = _dataclass(PolicyState, data)
    return state
