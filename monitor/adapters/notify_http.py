"""Signed, retried HTTP POSTs for the alert receivers (docs/webhook-verification.md).

Retry policy: 5xx, timeouts and connection errors are retried with exponential backoff and jitter;
4xx is not (the status and an excerpt of the response body are logged). Receivers whose API documents
429 as "slow down" (Slack, PagerDuty) may opt in to retrying it. Request bodies, URLs and secrets are
never logged: Slack webhook URLs and PagerDuty routing keys are credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("driftline.notify")

#: legacy header: ``sha256=<hex HMAC-SHA256 of the exact body bytes>`` (no replay protection; kept for
#: receivers written against it)
SIGNATURE_HEADER = "X-Driftline-Signature"
#: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the timestamp is signed with the body, so a
#: receiver that checks it is recent refuses a captured request replayed later (as Stripe and Slack do)
SIGNATURE_256_HEADER = "X-Driftline-Signature-256"
#: the signing time (unix seconds), the same ``t`` as in :data:`SIGNATURE_256_HEADER`
TIMESTAMP_HEADER = "X-Driftline-Timestamp"


def sign(secret: str | bytes, body: bytes) -> str:
    """Compute the ``X-Driftline-Signature`` header value for a body.

    Parameters
    ----------
    secret : str or bytes
        The shared HMAC secret (``str`` is UTF-8 encoded).
    body : bytes
        The exact request body bytes.

    Returns
    -------
    str
        ``"sha256=" + hex(HMAC-SHA256(secret, body))``.

    Examples
    --------
    >>> sign("k", b"{}")[:7]
    'sha256='
    """
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Driftline-Signature-256`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.

    >>> sign_timestamped("k", b"{}", 1767225600)[:30]
    't=1767225600,v1=fed6131b41a6ec'
    """
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_headers(secret: str | bytes, body: bytes, now: float) -> dict[str, str]:
    """The three signature headers for ``body`` signed at ``now`` (legacy, timestamped, timestamp)."""
    ts = int(now)
    return {SIGNATURE_HEADER: sign(secret, body), SIGNATURE_256_HEADER: sign_timestamped(secret, body, ts),
            TIMESTAMP_HEADER: str(ts)}


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of one ``send(batch)`` of a receiver.

    Attributes
    ----------
    ok : bool
        True when every request of the batch was accepted (2xx).
    attempts : int
        HTTP attempts made in total (1 per request without retries).
    status : int or None
        Status of the last response, None if the last attempt got no response.
    error : str
        Short description of the last failure (response body excerpt or exception), "" on success.
    retried : int
        Attempts beyond the first, summed over the requests of the batch.
    rejected : bool
        True when a request was refused with a non-retried 4xx.
    failed : frozenset of str
        Fingerprints of the alerts whose request failed (empty when ``ok``).
    """

    ok: bool
    attempts: int
    status: int | None = None
    error: str = ""
    retried: int = 0
    rejected: bool = False
    failed: frozenset[str] = field(default_factory=frozenset)

    def merge(self, other: DeliveryResult, fingerprints: frozenset[str]) -> DeliveryResult:
        """Combine with the result of another request that carried ``fingerprints``."""
        return DeliveryResult(
            ok=self.ok and other.ok,
            attempts=self.attempts + other.attempts,
            status=other.status if other.attempts else self.status,
            error=other.error or self.error,
            retried=self.retried + other.retried,
            rejected=self.rejected or other.rejected,
            failed=self.failed | (frozenset() if other.ok else fingerprints),
        )


#: the neutral element of :meth:`DeliveryResult.merge`
EMPTY_RESULT = DeliveryResult(ok=True, attempts=0)


class RetryingPoster:
    """POST bytes with the retry policy of docs/webhook-verification.md over an (injectable) ``httpx.Client``.

    Parameters
    ----------
    client : httpx.Client or None
        Client to use (tests pass one with ``httpx.MockTransport``); None creates and owns one.
    timeout_s : float
        Per-attempt timeout (connect, read, write, pool).
    max_retries : int
        Retries after the first attempt (so at most ``max_retries + 1`` attempts).
    backoff_s : float
        First retry delay; doubles each retry, capped at ``max_backoff_s``, with jitter in [0.5, 1.5).
    max_backoff_s : float
        Cap of one delay.
    retry_on_429 : bool
        Retry 429 Too Many Requests (honouring ``Retry-After`` up to ``max_backoff_s``).
    sleep : callable
        Sleep function (injectable for tests).
    """

    def __init__(self, client: httpx.Client | None = None, *, timeout_s: float = 5.0, max_retries: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, retry_on_429: bool = False,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must be >= 0")
        self._owned = client is None
        self.client = client if client is not None else httpx.Client(timeout=timeout_s)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.retry_on_429 = retry_on_429
        self.sleep = sleep

    def _delay(self, retry: int, resp: httpx.Response | None) -> float:
        if resp is not None and resp.status_code == 429:
            try:
                return min(float(resp.headers.get("Retry-After", "")), self.max_backoff_s)
            except ValueError:
                pass
        base: float = min(self.backoff_s * 2.0 ** retry, self.max_backoff_s)
        return base * (0.5 + random.random())

    def post(self, name: str, url: str, body: bytes,
             headers: Mapping[str, str] | Callable[[], Mapping[str, str]]) -> DeliveryResult:
        """POST ``body`` to ``url``, retrying as documented.

        Parameters
        ----------
        name : str
            Receiver name, used in logs (never the URL: it may embed a credential).
        url : str
            Target URL.
        body : bytes
            Request body, sent byte for byte (the signature covers these bytes).
        headers : mapping or callable
            Request headers, or a function returning them for each attempt (a timestamped signature is
            renewed on every retry, so a retry minutes later still passes the receiver's tolerance check).

        Returns
        -------
        DeliveryResult
            ``failed`` is left empty; the receiver fills it with the fingerprints it sent.
        """
        status: int | None = None
        error = ""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            resp: httpx.Response | None = None
            try:
                attempt_headers = headers() if callable(headers) else headers
                resp = self.client.post(url, content=body, headers=dict(attempt_headers), timeout=self.timeout_s)
                status = resp.status_code
                if 200 <= status < 300:
                    return DeliveryResult(True, attempt, status, retried=attempt - 1)
                error = resp.text[:200]
                if 400 <= status < 500 and not (status == 429 and self.retry_on_429):
                    log.warning("event=notify_rejected receiver=%s status=%d body=%r", name, status, error)
                    return DeliveryResult(False, attempt, status, error, retried=attempt - 1, rejected=True)
            except httpx.TransportError as exc:  # timeouts, refused connections, protocol errors
                status, error = None, type(exc).__name__
            if attempt < attempts:
                delay = self._delay(attempt - 1, resp)
                log.info("event=notify_retry receiver=%s attempt=%d status=%s error=%s delay_s=%.3f",
                         name, attempt, status, error if status is None else "", delay)
                self.sleep(delay)
        log.error("event=notify_failed receiver=%s attempts=%d status=%s error=%r", name, attempts, status, error)
        return DeliveryResult(False, attempts, status, error, retried=attempts - 1)

    def close(self) -> None:
        """Close the client if this poster created it."""
        if self._owned:
            self.client.close()
