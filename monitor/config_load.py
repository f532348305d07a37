"""Loading settings: the YAML file, ``MONITOR_*_FILE`` secrets and the environment, with errors that name
the key and where its value came from. :func:`load_settings` is the entry point (``monitor.config``
re-exports it)."""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import types
import typing
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from monitor.config import SECRET_FILE_SETTINGS, ConfigError, MonitorSettings, PolicyConfig

log = logging.getLogger("driftline.config")

_YAML: ContextVar[dict[str, Any] | None] = ContextVar("driftline_yaml", default=None)
_SECRETS: ContextVar[dict[str, Any] | None] = ContextVar("driftline_secret_files", default=None)
#: settings whose nested keys can be set with MONITOR_<SETTING>__<KEY>
_NESTED = ("policy", "fields")


def file_sources() -> tuple[Callable[[], dict[str, Any]], ...]:
    """The secret-file and YAML sources of the :func:`load_settings` call in progress (empty otherwise)."""
    return (lambda: dict(_SECRETS.get() or {}), lambda: dict(_YAML.get() or {}))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        # safe_load: tags such as !!python/object/apply are refused, nothing is constructed or called
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{at}: {what} (plain YAML only: Python tags are refused, "
                          "nothing in the file is run)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings, got {type(data).__name__}")
    return data


def _secret_files() -> tuple[dict[str, str], dict[str, str]]:
    """``MONITOR_<NAME>_FILE=/run/secrets/x`` reads a secret from a file (Docker/Kubernetes secrets).

    Returns the secrets and, per setting, the variable it came from (for error messages). An unreadable,
    non-UTF-8 or empty file is an error; a world-writable one is accepted with a warning.
    """
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name in SECRET_FILE_SETTINGS:
        var = f"MONITOR_{name.upper()}_FILE"
        path = os.environ.get(var)
        if path is None:
            continue
        where = f"{var}={path}"
        if f"MONITOR_{name.upper()}" in os.environ:
            raise ConfigError(f"{name}: both MONITOR_{name.upper()} and {var} are set; use one")
        if not path:
            raise ConfigError(f"{name}: {var} is set but empty (unset it, or name the secret file)")
        try:
            raw = Path(path).read_bytes()
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read secret file ({where}): {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{name}: secret file is not UTF-8 text ({where}, byte {exc.start})") from None
        if not text:
            raise ConfigError(f"{name}: secret file is empty ({where}); an empty secret would silently turn "
                              "signing or authentication off")
        if mode & stat.S_IWOTH:
            log.warning("event=secret_file_world_writable setting=%s file=%s (anyone on this host can replace "
                        "the secret: chmod o-w)", name, path)
        out[name] = text
        origin[name] = where
    return out, origin


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (``PolicyConfig``, ``X | None`` → ``X``), else None."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    for candidate in (annotation, *(typing.get_args(annotation) if union else ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _nested_names(model: type[BaseModel], prefix: str) -> tuple[set[str], set[str]]:
    """``(names, open prefixes)`` of every nested setting under ``prefix``: a field holding a model recurses;
    a mapping field (``policy.methods``, ``baselines.models``) accepts any key, which pydantic then checks."""
    names, prefixes = set(), set()
    for name, info in model.model_fields.items():
        var = f"{prefix}{name.upper()}"
        names.add(var)
        sub = _model_of(info.annotation)
        if typing.get_origin(info.annotation) is dict:
            keys = typing.get_args(typing.get_args(info.annotation)[0])
            if keys:  # fixed keys (a Literal): ``fields``
                names |= {f"{var}__{k.upper()}" for k in keys}
            else:
                prefixes.add(var + "__")
        elif sub is not None:
            more, more_prefixes = _nested_names(sub, var + "__")
            names |= more
            prefixes |= more_prefixes
    return names, prefixes


def _known_variables() -> tuple[set[str], set[str]]:
    names, prefixes = _nested_names(MonitorSettings, "MONITOR_")
    names |= {"MONITOR_CONFIG"} | {f"MONITOR_{n.upper()}_FILE" for n in SECRET_FILE_SETTINGS}
    return names, prefixes


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` for a ``MONITOR_*`` variable that is no setting, naming the closest one.

    >>> check_environment({"MONITOR_WINDOWW": "5m"})
    Traceback (most recent call last):
    ...
    monitor.config.ConfigError: unknown environment variable MONITOR_WINDOWW (did you mean MONITOR_WINDOW?)
    """
    env = os.environ if environ is None else environ
    known, open_prefixes = _known_variables()
    problems = []
    for var in sorted(env):
        upper = var.upper()
        if not upper.startswith("MONITOR_") or upper in known or upper.startswith(tuple(open_prefixes)):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else " (see README, Configuration)"
        problems.append(f"unknown environment variable {var}{hint}")
    if problems:
        raise ConfigError("\n  ".join(problems))


def _get(data: Mapping[str, Any], loc: tuple[str | int, ...]) -> bool:
    value: Any = data
    for part in loc:
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


class _Origins:
    """Where each setting's value came from, for error messages."""

    def __init__(self, path: Path | None, data: Mapping[str, Any], secret_origin: Mapping[str, str],
                 overrides: Mapping[str, Any]) -> None:
        self.path, self.data, self.secret_origin, self.overrides = path, data, secret_origin, overrides
        self.environ = {k.upper(): k for k in os.environ}

    def of(self, loc: tuple[str | int, ...]) -> str:
        if loc and loc[0] in self.overrides:
            return f"command-line option --{str(loc[0]).replace('_', '-')}"
        for n in range(len(loc), 0, -1):
            var = "MONITOR_" + "__".join(str(p) for p in loc[:n]).upper()
            if var in self.environ:
                return f"environment variable {self.environ[var]}"
        if loc and loc[0] in self.secret_origin:
            return self.secret_origin[str(loc[0])]
        if self.path is not None and loc and _get(self.data, loc[:1]):
            return f"file {self.path}"
        return "defaults"

    def of_model_error(self, prefix: tuple[str | int, ...], model: type[BaseModel], msg: str) -> tuple[str, str]:
        """A cross-field error (e.g. hop larger than window): the fields the message names, and the origin
        of each."""
        named = sorted((m.start(), f) for f in model.model_fields if (m := re.search(rf"\b{f}\b", msg)))
        keys = [".".join(map(str, (*prefix, f))) for _, f in named]
        if not keys:
            return ".".join(map(str, prefix)) or "settings", self.of(prefix)
        return ", ".join(keys), "; ".join(f"{k} from {self.of((*prefix, f))}" for k, (_, f) in zip(keys, named,
                                                                                                   strict=True))


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown setting"
    if err["type"] == "literal_error" and isinstance(err.get("input"), str):
        allowed = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(err["input"], allowed, n=1, cutoff=0.5)
        return f"{msg} (got {err['input']!r}{f'; did you mean {close[0]!r}?' if close else ''})"
    if "input" in err and err["type"] not in ("value_error", "missing") and not isinstance(err["input"], dict):
        return f"{msg} (got {repr(err['input'])[:80]})"
    return msg


def _unknown_hint(loc: tuple[str | int, ...]) -> str:
    """``(did you mean …?)`` for an unknown key, from the fields of the model it was found in."""
    model: type[BaseModel] | None = MonitorSettings
    for part in loc[:-1]:
        info = model.model_fields.get(str(part)) if model is not None else None
        model = _model_of(info.annotation) if info is not None else None
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean {'.'.join(map(str, (*loc[:-1], close[0])))}?)" if close else ""


def load_settings(config: Path | str | None = None, **overrides: Any) -> MonitorSettings:
    """Load settings from ``config`` (or ``$MONITOR_CONFIG``), the environment, and explicit ``overrides``
    (command-line options: they win; ``None`` means "not given").

    Raises :class:`ConfigError` with one line per problem, naming the key and where it came from.
    """
    path_text = str(config) if config is not None else os.environ.get("MONITOR_CONFIG")
    path = Path(path_text) if path_text else None
    data: dict[str, Any] = _read_yaml(path) if path is not None else {}
    check_environment()
    secrets, secret_origin = _secret_files()
    given = {k: v for k, v in overrides.items() if v is not None}
    origins = _Origins(path, data, secret_origin, given)
    yaml_token, secrets_token = _YAML.set(data), _SECRETS.set(secrets)
    try:
        return MonitorSettings(**given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "[key]")
            key = ".".join(str(p) for p in loc) or "settings"
            msg = _message(err)
            if err["type"] == "extra_forbidden":
                msg += _unknown_hint(loc)
            if err["type"] == "value_error" and loc in ((), ("policy",)):
                key, where = origins.of_model_error(loc, PolicyConfig if loc else MonitorSettings, msg)
            else:
                where = origins.of(loc)
            problems.append(f"{key}: {msg} (from {where})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    finally:
        _YAML.reset(yaml_token)
        _SECRETS.reset(secrets_token)
