"""``monitor dashboards push``: provision the datasource, folder and dashboards through Grafana's HTTP API
(grafana-client), idempotently: uid-stable, and a dashboard is only written when its content changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaUnauthorizedError,
)

DATASOURCE_UID = "driftline-influxdb"
FOLDER_UID = "driftline"


class PushError(RuntimeError):
    """A push failed; the message says why in user terms (auth, permission, connection)."""


@dataclass(frozen=True)
class Change:
    kind: str  # datasource | folder | dashboard
    uid: str
    action: str  # created | updated | unchanged
    detail: str = ""


def default_dashboards_dir() -> Path:
    for candidate in (Path(__file__).resolve().parents[2] / "dashboards", Path("/app/dashboards"),
                      Path.cwd() / "dashboards"):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    return Path.cwd() / "dashboards"


def datasource_body(influx_url: str, database: str, token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": DATASOURCE_UID, "name": "Driftline InfluxDB", "type": "influxdb", "access": "proxy",
        "url": influx_url, "isDefault": False, "jsonData": {"dbName": database, "httpMode": "POST"},
    }
    if token:
        body["jsonData"]["httpHeaderName1"] = "Authorization"
        body["secureJsonData"] = {"httpHeaderValue1": f"Token {token}"}
    return body


def _explain(exc: Exception, url: str) -> PushError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return PushError(f"Grafana at {url} rejected the token (401): check --token / GRAFANA_TOKEN")
    if isinstance(exc, GrafanaClientError) and getattr(exc, "status_code", None) == 403:
        return PushError(f"the token is valid but lacks permission (403): it needs the Admin role "
                         f"(or datasources:write + dashboards:write) on {url}")
    if isinstance(exc, GrafanaException):
        return PushError(f"Grafana at {url} answered an error: {exc}")
    return PushError(f"cannot connect to Grafana at {url}: {exc}")


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in ("id", "version")}


def push(url: str, token: str | None, dashboards_dir: Path, *, influx_url: str, database: str,
         influx_token: str | None = None, folder_title: str = "Driftline", api: GrafanaApi | None = None,
         timeout: float = 10.0) -> list[Change]:
    """Create or update the datasource, the folder and every ``*.json`` dashboard; return what changed."""
    files = sorted(dashboards_dir.glob("*.json"))
    if not files:
        raise PushError(f"no dashboards (*.json) in {dashboards_dir}")
    grafana = api or GrafanaApi.from_url(url, credential=token, timeout=timeout)
    changes: list[Change] = []
    try:
        ds = datasource_body(influx_url, database, influx_token)
        try:
            current = grafana.datasource.get_datasource_by_uid(DATASOURCE_UID)
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) != 404:
                raise
            current = None
        if current is None:
            grafana.datasource.create_datasource(ds)
            changes.append(Change("datasource", DATASOURCE_UID, "created", influx_url))
        elif any(current.get(k) != v for k, v in ds.items() if k != "secureJsonData") or influx_token:
            grafana.datasource.update_datasource_by_uid(DATASOURCE_UID, ds)
            changes.append(Change("datasource", DATASOURCE_UID, "updated", influx_url))
        else:
            changes.append(Change("datasource", DATASOURCE_UID, "unchanged"))
        try:
            grafana.folder.get_folder(FOLDER_UID)
            changes.append(Change("folder", FOLDER_UID, "unchanged"))
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) != 404:
                raise
            grafana.folder.create_folder(folder_title, uid=FOLDER_UID)
            changes.append(Change("folder", FOLDER_UID, "created", folder_title))
        for f in files:
            board = json.loads(f.read_text(encoding="utf-8"))
            uid = board["uid"]
            try:
                existing = grafana.dashboard.get_dashboard(uid)
            except GrafanaClientError as exc:
                if getattr(exc, "status_code", None) != 404:
                    raise
                existing = None
            if existing is not None and _strip(existing.get("dashboard", {})) == _strip(board):
                changes.append(Change("dashboard", uid, "unchanged", board["title"]))
                continue
            body = dict(board)
            body.pop("id", None)
            if existing is not None:
                body["version"] = existing.get("dashboard", {}).get("version", body.get("version"))
            grafana.dashboard.update_dashboard({"dashboard": body, "folderUid": FOLDER_UID, "overwrite": True,
                                                "message": "monitor dashboards push"})
            changes.append(Change("dashboard", uid, "updated" if existing is not None else "created", board["title"]))
    except PushError:
        raise
    except Exception as exc:
        raise _explain(exc, url) from None
    return changes
