r"""A strict parser for the InfluxDB line protocol Driftline writes: the inverse of ``MetricPoint.to_line``.

Grammar (as written by :meth:`monitor.types.MetricPoint.to_line`)::

    measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] timestamp_ns

* measurement, tag keys, tag values and field keys: ``\,``, ``\=`` and ``\ `` are escapes; any other
  backslash is literal (as InfluxDB reads it) but must be followed by an ordinary character — a
  backslash before a backslash or at the end of a name is refused, because servers disagree on it;
* string field values are double-quoted with ``\\`` and ``\"`` escaped (other backslashes are literal,
  so the ``\n`` that ``to_line`` writes for a newline reads back as those two characters);
* integers carry an ``i`` suffix, floats are plain decimals with an optional exponent, booleans are
  ``true``/``false`` (InfluxDB's ``t``/``T``/``True``/``TRUE`` spellings are accepted);
* the timestamp is an integer number of nanoseconds within InfluxDB's range and is required.

It is strict where InfluxDB 1.x refuses or misreads a line, so a test that reads its output back sees
what the server would: a control character (a newline or carriage return above all: it would end the
point and start another) anywhere outside a string value, a newline inside one, ``inf``/``nan``, a
``+`` sign, the ``u`` suffix (1.x has no unsigned integers), an integer or timestamp out of range, a
measurement starting with ``#`` (a comment), an empty or reserved key (``time``, ``_field``,
``_measurement``). Malformed input raises :class:`ValueError` naming the column.
"""

from __future__ import annotations

import re
from pathlib import Path

from monitor.types import MAX_TIME_NS, MIN_TIME_NS, RESERVED_KEYS, FieldValue, MetricPoint

__all__ = ["parse_line", "parse_text", "read_lp"]

_FLOAT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT = re.compile(r"-?\d+")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})
#: C0/C1 controls, DEL and the Unicode line/paragraph separators (monitor.names refuses them in names)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _Scanner:
    """Cursor over the text being parsed; every ``read_*`` advances ``pos``."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def peek(self) -> str:
        """The current character, or ``""`` at the end of the text."""
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def error(self, what: str) -> ValueError:
        """A ``ValueError`` pointing at the current position."""
        start = self.text.rfind("\n", 0, self.pos) + 1
        end = self.text.find("\n", self.pos)
        line = self.text[start:end if end >= 0 else len(self.text)]
        return ValueError(f"line protocol: {what} at column {self.pos - start + 1}: {line[:160]!r}")

    def expect(self, char: str, what: str) -> None:
        """Consume ``char`` or raise."""
        if self.peek() != char:
            found = repr(self.peek()) if self.peek() else "end of line"
            raise self.error(f"expected {what}, found {found}")
        self.pos += 1

    def read_token(self, stops: str, escapable: str = ",= ") -> str:
        """A name up to (not including) the first unescaped character of ``stops``."""
        text, i, out = self.text, self.pos, []
        while i < len(text):
            c = text[i]
            if c == "\\":
                nxt = text[i + 1] if i + 1 < len(text) else ""
                if nxt in escapable and nxt:
                    out.append(nxt)
                    i += 2
                    continue
                if nxt == "\\" or nxt == "" or nxt in stops:
                    self.pos = i
                    raise self.error("a backslash before a backslash or at the end of a name")
            elif c in stops:
                break
            elif _CONTROL.match(c):
                self.pos = i
                raise self.error(f"control character U+{ord(c):04X}")
            out.append(c)
            i += 1
        self.pos = i
        return "".join(out)

    def read_string(self) -> str:
        """A double-quoted string field value (the scanner is on the opening quote)."""
        text, i, out = self.text, self.pos + 1, []
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text) and text[i + 1] in '\\"':
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                self.pos = i + 1
                return "".join(out)
            if c in "\r\n":
                self.pos = i
                raise self.error("a newline inside a string field value")
            out.append(c)
            i += 1
        raise self.error("unterminated string field value")

    def read_scalar(self) -> FieldValue:
        """An unquoted field value: integer, float or boolean."""
        start = self.pos
        raw = self.read_token(", \n", escapable="")
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        if raw[-1:] == "i" and _INT.fullmatch(raw[:-1]) and -(2**63) <= int(raw[:-1]) < 2**63:
            return int(raw[:-1])
        if _FLOAT.fullmatch(raw):
            value = float(raw)
            if value not in (float("inf"), float("-inf")):
                return value
        self.pos = start
        raise self.error(f"bad field value {raw!r}")

    def read_point(self) -> MetricPoint:
        """One point; stops right after the timestamp."""
        if self.peek() == "#":
            raise self.error("a measurement starting with '#' (a comment)")
        measurement = self.read_token(", ")
        if not measurement:
            raise self.error("empty measurement")
        tags: list[tuple[str, str]] = []
        while self.peek() == ",":
            self.pos += 1
            key = self.read_token("=, ")
            self.expect("=", "'=' after tag key")
            tag_value = self.read_token("=, ")
            if not key or not tag_value or key in RESERVED_KEYS:
                raise self.error(f"empty or reserved tag key, or empty value ({key!r}={tag_value!r})")
            tags.append((key, tag_value))
        self.expect(" ", "a space before the fields")
        fields: list[tuple[str, FieldValue]] = []
        while True:
            key = self.read_token("=, ")
            if not key or key in RESERVED_KEYS:
                raise self.error(f"empty or reserved field key {key!r}")
            self.expect("=", "'=' after field key")
            value = self.read_string() if self.peek() == '"' else self.read_scalar()
            fields.append((key, value))
            if self.peek() != ",":
                break
            self.pos += 1
        self.expect(" ", "a space before the timestamp")
        m = _INT.match(self.text, self.pos)
        if m is None:
            raise self.error("missing integer timestamp (ns)")
        if not MIN_TIME_NS <= int(m.group()) <= MAX_TIME_NS:
            raise self.error("timestamp outside InfluxDB's range")
        self.pos = m.end()
        return MetricPoint(measurement, tuple(tags), tuple(fields), int(m.group()))


def parse_line(line: str) -> MetricPoint:
    r"""Parse one point; a trailing ``\n`` or ``\r\n`` is allowed, anything else after the timestamp is not.

    >>> p = parse_line('drift,feature=a\\ b,model=m score=0.5,drifted=true,n=3i,note="x \\"y\\"" 10')
    >>> p.measurement, p.tags, p.time_ns
    ('drift', (('feature', 'a b'), ('model', 'm')), 10)
    >>> p.fields
    (('score', 0.5), ('drifted', True), ('n', 3), ('note', 'x "y"'))
    """
    text = line[:-1] if line.endswith("\n") else line
    text = text[:-1] if text.endswith("\r") else text
    scanner = _Scanner(text)
    point = scanner.read_point()
    if scanner.pos != len(text):
        raise scanner.error("unexpected text after the timestamp")
    return point


def parse_text(text: str) -> list[MetricPoint]:
    """Every point in a line-protocol document.

    Points are separated by newlines; empty lines and lines starting with ``#`` (comments) are
    skipped. Unlike ``text.splitlines()`` this does not split on other Unicode line separators (the
    line protocol does not). Errors name the 1-based line number.
    """
    out: list[MetricPoint] = []
    scanner = _Scanner(text)
    n = len(text)
    while scanner.pos < n:
        c = scanner.peek()
        if c in "\r\n":
            scanner.pos += 1
            continue
        if c == "#":
            nl = text.find("\n", scanner.pos)
            scanner.pos = n if nl < 0 else nl + 1
            continue
        start = scanner.pos
        try:
            out.append(scanner.read_point())
            if scanner.peek() == "\r":
                scanner.pos += 1
            if scanner.peek() not in ("", "\n"):
                raise scanner.error("unexpected text after the timestamp")
        except ValueError as exc:
            raise ValueError(f"line {text.count(chr(10), 0, start) + 1}: {exc}") from None
    return out


def read_lp(path: Path | str) -> list[MetricPoint]:
    """Every point in a line-protocol file (UTF-8), as :func:`parse_text` reads them."""
    return parse_text(Path(path).read_text(encoding="utf-8"))
