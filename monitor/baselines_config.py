"""The ``baselines`` settings: what each model's windows are compared against besides its training profile.

``baselines: {trailing: 7d, seasonal: 1d}`` is the short form; every baseline also takes a mapping (see
config.example.yaml and docs/baselines.md). Durations are checked here; that ``block`` fits the window
size is checked by :class:`~monitor.config.MonitorSettings`, which knows the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _seconds(text: str) -> float:
    from monitor.config import parse_duration  # monitor.config imports this module

    return parse_duration(text)


def _positive(v: str) -> str:
    if _seconds(v) <= 0:
        raise ValueError("must be > 0")
    return v


class TrainingBaseline(BaseModel):
    """The reference profile (always compared against). ``alerts``: drift against it may page;
    ``retrain``: it counts towards retraining requests."""

    model_config = ConfigDict(extra="forbid")
    alerts: bool = True
    retrain: bool = True


class TrailingBaseline(BaseModel):
    """The merged bin counts of the last ``length`` of admitted windows (see docs/baselines.md)."""

    model_config = ConfigDict(extra="forbid")
    length: str = "7d"
    alerts: bool = True
    retrain: bool = False

    @field_validator("length")
    @classmethod
    def _check(cls, v: str) -> str:
        return _positive(v)

    @property
    def length_s(self) -> float:
        return _seconds(self.length)


class SeasonalBaseline(BaseModel):
    """The same stretch of time one ``period`` earlier, pooled over the last ``periods`` periods."""

    model_config = ConfigDict(extra="forbid")
    period: str = "1d"
    periods: int = Field(default=1, ge=1, le=52)
    alerts: bool = True
    retrain: bool = False

    @field_validator("period")
    @classmethod
    def _check(cls, v: str) -> str:
        return _positive(v)

    @property
    def period_s(self) -> float:
        return _seconds(self.period)


class ExcludeRange(BaseModel):
    """Event time ``[start, end)`` whose windows never enter a sample baseline (an incident, a launch)."""

    model_config = ConfigDict(extra="forbid")
    start: datetime
    end: datetime
    #: the models it applies to; null: every model
    models: list[str] | None = None
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> ExcludeRange:
        if self.end_s <= self.start_s:
            raise ValueError(f"exclude range ends ({self.end}) before it starts ({self.start})")
        return self

    @property
    def start_s(self) -> float:
        return _epoch(self.start)

    @property
    def end_s(self) -> float:
        return _epoch(self.end)


def _epoch(t: datetime) -> float:
    """Epoch seconds; a time without a zone is UTC."""
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp()


def _short(field: str, v: Any) -> Any:
    """``trailing: 7d`` → ``{length: 7d}``; ``seasonal: 1w`` → ``{period: 1w}``."""
    return {field: v} if isinstance(v, str | int | float) and not isinstance(v, bool) else v


class ModelBaselines(BaseModel):
    """Per-model replacement of ``training``/``trailing``/``seasonal`` (a key set to null turns it off for
    the model; keys not given follow the global ones)."""

    model_config = ConfigDict(extra="forbid")
    training: TrainingBaseline | None = None
    trailing: TrailingBaseline | None = None
    seasonal: SeasonalBaseline | None = None

    @field_validator("trailing", mode="before")
    @classmethod
    def _trailing_short(cls, v: Any) -> Any:
        return _short("length", v)

    @field_validator("seasonal", mode="before")
    @classmethod
    def _seasonal_short(cls, v: Any) -> Any:
        return _short("period", v)


@dataclass(frozen=True)
class ModelBaselinePlan:
    """The baselines one model is compared against (global settings with its override applied)."""

    training: TrainingBaseline
    trailing: TrailingBaseline | None
    seasonal: SeasonalBaseline | None

    @property
    def samples(self) -> bool:
        return self.trailing is not None or self.seasonal is not None

    @property
    def retain_s(self) -> float:
        """How far back the blocks this model needs reach."""
        return max(self.trailing.length_s if self.trailing else 0.0,
                   self.seasonal.period_s * self.seasonal.periods if self.seasonal else 0.0)


class BaselinesConfig(BaseModel):
    """``baselines``: sample baselines next to the training profile (docs/baselines.md)."""

    model_config = ConfigDict(extra="forbid")
    training: TrainingBaseline = Field(default_factory=TrainingBaseline)
    trailing: TrailingBaseline | None = None
    seasonal: SeasonalBaseline | None = None
    #: admitted windows are summed into blocks of this much event time: the granularity of both sample
    #: baselines, of what is kept in memory and of what is written to the checkpoint topic
    block: str = "1h"
    #: a sample baseline with fewer events than this is not compared against (no points that window)
    min_events: int = Field(default=200, ge=1)
    #: leave a window out of the sample baselines when it drifted against every one it was compared with
    exclude_drifted: bool = True
    #: … unless the drift has lasted this long: it is the new normal (null: never admit drifted windows)
    adopt_after: str | None = "1d"
    exclude: list[ExcludeRange] = Field(default_factory=list)
    models: dict[str, ModelBaselines] = Field(default_factory=dict)

    @field_validator("trailing", mode="before")
    @classmethod
    def _trailing_short(cls, v: Any) -> Any:
        return _short("length", v)

    @field_validator("seasonal", mode="before")
    @classmethod
    def _seasonal_short(cls, v: Any) -> Any:
        return _short("period", v)
    @field_validator("block")
    @classmethod
    def _check_block(cls, v: str) -> str:
        return _positive(v)

    @field_validator("adopt_after")
    @classmethod
    def _check_adopt(cls, v: str | None) -> str | None:
        return None if v is None else _positive(v)

    @property
    def block_s(self) -> float:
        return _seconds(self.block)

    @property
    def adopt_after_s(self) -> float | None:
        return None if self.adopt_after is None else _seconds(self.adopt_after)

    def plan(self, model: str) -> ModelBaselinePlan:
        """The baselines of ``model``."""
        over = self.models.get(model)
        fields: dict[str, Any] = {"training": self.training, "trailing": self.trailing, "seasonal": self.seasonal}
        if over is not None:
            for name in over.model_fields_set & set(fields):
                fields[name] = getattr(over, name)
            if fields["training"] is None:
                fields["training"] = TrainingBaseline(alerts=False, retrain=False)
        return ModelBaselinePlan(**fields)

    def excluded(self, model: str, start: float, end: float) -> bool:
        """Whether ``[start, end)`` of ``model`` overlaps a configured exclusion."""
        return any(r.start_s < end and start < r.end_s and (r.models is None or model in r.models)
                   for r in self.exclude)

    def check_window(self, window_s: float) -> None:
        """Raise ``ValueError`` naming the key when the blocks do not fit the window size (only when some
        model has a sample baseline: without one, ``block`` is unused)."""
        if not (self.trailing or self.seasonal or any(o.trailing or o.seasonal for o in self.models.values())):
            return
        block = self.block_s
        if not _multiple(block, window_s):
            raise ValueError(f"baselines.block ({self.block}) must be a multiple of the window size ({window_s:g}s)")
        scopes: list[tuple[str, BaselinesConfig | ModelBaselines]] = [("baselines", self)]
        scopes += [(f"baselines.models.{m}", o) for m, o in self.models.items()]
        for where, cfg in scopes:
            seasonal = cfg.seasonal
            if seasonal is not None and not _multiple(seasonal.period_s, block):
                raise ValueError(f"{where}.seasonal.period ({seasonal.period}) must be a multiple of "
                                 f"baselines.block ({self.block})")
            trailing = cfg.trailing
            if trailing is not None and trailing.length_s < block:
                raise ValueError(f"{where}.trailing.length ({trailing.length}) must be at least "
                                 f"baselines.block ({self.block})")


def _multiple(a: float, b: float) -> bool:
    k = a / b
    return k >= 1 and abs(k - round(k)) < 1e-9
