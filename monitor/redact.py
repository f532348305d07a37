"""Credentials out of logs: URLs are logged with their userinfo and secret-looking query values masked.

Pure string functions; :class:`monitor.config.SecretUrl` uses :func:`redact_url` as its display form, so a
URL setting's ``repr``, ``str`` and JSON dump never show a password or token.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["redact_url"]

#: query/fragment parameter names whose values are credentials (matched anywhere in the name, any case;
#: ``p`` is InfluxDB 1.x's password parameter)
_SECRET_PARAM = re.compile(r"^p$|token|key|secret|pass|pwd|sig|auth|credential|session|code", re.IGNORECASE)
MASK = "***"


def _redact_params(text: str) -> str:
    out = []
    for part in text.split("&"):
        name, eq, _value = part.partition("=")
        out.append(f"{name}={MASK}" if eq and _SECRET_PARAM.search(urllib.parse.unquote_plus(name)) else part)
    return "&".join(out)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and the values of secret-looking query/fragment parameters masked.

    >>> redact_url("http://user:s3cr3t@influx:8086/api?org=o&token=abc&X-Amz-Signature=f00")
    'http://***@influx:8086/api?org=o&token=***&X-Amz-Signature=***'
    >>> redact_url("https://hooks.example.com/alerts")
    'https://hooks.example.com/alerts'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal: show nothing rather than a half-parsed secret
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, _redact_params(parts.query),
                                    _redact_params(parts.fragment)))
