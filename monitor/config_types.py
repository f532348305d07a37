"""Value types of the settings: durations parsed once (:class:`Duration`) and secret URLs shown redacted
(:class:`SecretUrl`). ``monitor.config`` re-exports them."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from pydantic import GetCoreSchemaHandler, SecretStr
from pydantic_core import CoreSchema, core_schema

from monitor.redact import redact_url

__all__ = ["MAX_DURATION_S", "Duration", "SecretUrl", "format_duration", "parse_duration", "reveal"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
#: no duration setting may exceed this (a window of 1,000,000 weeks writes times InfluxDB refuses)
MAX_DURATION_S = 366 * 86400.0
def parse_duration(text: str | float | int) -> float:
    """Parse ``"5m"``, ``"30s"``, ``"1h"``, ``"250ms"`` or a number of seconds into seconds.

    >>> parse_duration("5m"), parse_duration("1.5h"), parse_duration(30)
    (300.0, 5400.0, 30.0)
    """
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 5m, 1h, 7d")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"duration must be a finite number >= 0, got {text}")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 5m, 1h, 7d")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 5m, 1h, 7d")
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for tags (``300 -> '5m'``).

    >>> format_duration(300), format_duration(90), format_duration(3600), format_duration(0.5)
    ('5m', '90s', '1h', '500ms')
    """
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_S[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


class Duration(float):
    """A duration setting: a ``float`` of seconds, parsed once at load, whose ``str`` is the text it was
    given (``"5m"``), for messages and tags.

    >>> d = Duration("5m")
    >>> d + 0, str(d), f"every {d}", Duration(90).text, d == "300s", d == 300
    (300.0, '5m', 'every 5m', '90s', True, True)
    """

    text: str

    def __new__(cls, value: str | float | int) -> Duration:
        if isinstance(value, Duration):
            return value
        seconds = parse_duration(value)
        self = super().__new__(cls, seconds)
        if isinstance(value, str):
            self.text = value.strip()
        else:
            short = format_duration(seconds)
            exact = format(Decimal(repr(seconds)), "f")  # positional, every digit of the float: parses back equal
            self.text = short if parse_duration(short) == seconds else exact + "s"
        return self

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        return self.text if not spec else float.__format__(self, spec)

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __eq__(self, other: object) -> bool:
        """Equal to the same length as a number or as a duration text (``Duration("7m") == "420s"``)."""
        if isinstance(other, str):
            try:
                return float(self) == parse_duration(other)
            except ValueError:
                return False
        return float(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = float.__hash__

    def __reduce__(self) -> tuple[Any, ...]:
        return (Duration, (self.text,))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls, serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"))


class SecretUrl(SecretStr):
    """A URL that may carry a credential (userinfo, a ``token`` parameter): shown redacted, never in full.

    >>> SecretUrl("http://u:pw@host:8086/?token=t")
    SecretUrl('http://***@host:8086/?token=***')
    """

    def _display(self) -> str:
        return redact_url(self.get_secret_value())


def reveal(secret: SecretStr | None) -> str | None:
    """The real value of a secret setting (``None`` when unset), where a client needs it.

    >>> reveal(SecretStr("t0k3n")), reveal(None)
    ('t0k3n', None)
    """
    return secret.get_secret_value() if secret is not None else None


def _bounded(v: Duration | None, *, positive: bool,
             limit: float = MAX_DURATION_S) -> Duration | None:
    if v is None:
        return v
    if positive and v <= 0:
        raise ValueError(f"must be > 0 (got {v.text!r})")
    if positive and v < 0.001:
        raise ValueError(f"must be at least 1ms (got {v.text!r})")
    if v > limit:
        raise ValueError(f"must be at most {format_duration(limit)} (got {v.text!r})")
    return v
