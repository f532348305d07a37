"""The Alertmanager webhook v4 payload (docs/webhook-verification.md), shared by every notifier and by replay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from monitor.types import Alert


def group_alerts(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """One notification per (model, status), in first-seen order."""
    groups: dict[tuple[str, str], list[Alert]] = {}
    for a in alerts:
        groups.setdefault((a.model, a.status), []).append(a)
    return list(groups.values())


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_payload(alerts: Sequence[Alert], receiver: str, external_url: str = "") -> dict[str, Any]:
    """An Alertmanager webhook v4 body for one group of alerts (same model and status)."""
    if not alerts:
        raise ValueError("a notification needs at least one alert")
    labels = [dict(a.labels) for a in alerts]
    group_labels = {"model": alerts[0].model}
    return {
        "version": "4",
        "groupKey": "{}:" + orjson.dumps(group_labels, option=orjson.OPT_SORT_KEYS).decode(),
        "truncatedAlerts": 0,
        "status": alerts[0].status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": _common(labels),
        "commonAnnotations": _common([dict(a.annotations) for a in alerts]),
        "externalURL": external_url,
        "alerts": [a.to_dict() for a in alerts],
    }


def webhook_payloads(alerts: Sequence[Alert], receiver: str, external_url: str = "") -> list[dict[str, Any]]:
    """Payloads for a batch of alerts: one per (model, status) group."""
    return [webhook_payload(g, receiver, external_url) for g in group_alerts(alerts)]
