"""A parser for the InfluxDB line protocol Driftline writes (the inverse of ``MetricPoint.to_line``)."""

from __future__ import annotations

from pathlib import Path

from monitor.types import FieldValue, MetricPoint


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes, honouring backslash escapes."""
    out, cur, quoted, i = [], [], False, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            out.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _value(raw: str) -> FieldValue:
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return _unescape(raw[1:-1])
    if raw in ("true", "t", "T", "True", "TRUE"):
        return True
    if raw in ("false", "f", "F", "False", "FALSE"):
        return False
    if raw.endswith("i"):
        return int(raw[:-1])
    return float(raw)


def parse_line(line: str) -> MetricPoint:
    """Parse one line: ``measurement,tag=v field=1i,other="s" 1700000000000000000``.

    >>> p = parse_line('drift,feature=a\\\\ b,model=m score=0.5,drifted=true,n=3i 10')
    >>> p.measurement, p.tags, p.fields, p.time_ns
    ('drift', (('feature', 'a b'), ('model', 'm')), (('score', 0.5), ('drifted', True), ('n', 3)), 10)
    """
    parts = _split(line.strip(), " ")
    if len(parts) != 3:
        raise ValueError(f"not a line-protocol point with a timestamp: {line[:120]!r}")
    head, fields_raw, ts = parts
    key = _split(head, ",")
    tags = tuple((_unescape(k), _unescape(v)) for k, v in (_split(t, "=")[:2] for t in key[1:]))
    fields = []
    for f in _split(fields_raw, ","):
        k, *rest = _split(f, "=")
        fields.append((_unescape(k), _value("=".join(rest))))
    return MetricPoint(_unescape(key[0]), tags, tuple(fields), int(ts))


def read_lp(path: Path | str) -> list[MetricPoint]:
    """Every point in a line-protocol file (blank lines and comments skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(parse_line(line))
    return out
