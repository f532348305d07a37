"""``monitor dashboards push``: provision the datasource, folder and dashboards through Grafana's HTTP API
(grafana-client).

Idempotent and uid-stable: the datasource, the folder and each dashboard are looked up by uid and only
written when what we would send differs from what Grafana holds (keys Grafana adds on save are ignored).
Version-aware: a dashboard update carries the version read from Grafana with ``overwrite: false``, so an
edit saved in Grafana between our read and our write is refused (412) instead of silently overwritten, and
each change reports ``vN → vM``. The InfluxDB token is write-only in Grafana (``secureJsonData``); a
short SHA-256 fingerprint of it is kept in ``jsonData`` so a re-push with the same token stays unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from monitor.redact import redact_url

DATASOURCE_UID = "driftline-influxdb"
DATASOURCE_NAME = "Driftline InfluxDB"
FOLDER_UID = "driftline"
DASHBOARD_TAG = "driftline"
PUSH_MESSAGE = "monitor dashboards push"


class PushError(RuntimeError):
    """A push failed; the message says why in user terms (auth, permission, connection, conflict)."""


@dataclass(frozen=True)
class Change:
    kind: str  # datasource | folder | dashboard
    uid: str
    action: str  # created | updated | unchanged
    detail: str = ""


@dataclass(frozen=True)
class RemoteStatus:
    uid: str
    title: str
    local: bool
    remote_version: int | None
    state: str  # in sync | differs | missing | not local


def default_dashboards_dir() -> Path:
    for candidate in (Path(__file__).resolve().parents[2] / "dashboards", Path("/app/dashboards"),
                      Path.cwd() / "dashboards"):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    return Path.cwd() / "dashboards"


def load_dashboards(dashboards_dir: Path) -> list[dict[str, Any]]:
    files = sorted(dashboards_dir.glob("*.json"))
    if not files:
        raise PushError(f"no dashboards (*.json) in {dashboards_dir}")
    boards = []
    for f in files:
        try:
            board = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PushError(f"{f}: not a dashboard JSON file ({exc})") from None
        if not isinstance(board, dict) or not board.get("uid") or not board.get("title"):
            raise PushError(f"{f}: a dashboard needs a stable 'uid' and a 'title'")
        boards.append(board)
    return boards


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def datasource_body(influx_url: str, database: str, token: str | None) -> dict[str, Any]:
    """The InfluxQL datasource (InfluxDB 1.x natively, 2.x through its DBRP mapping)."""
    body: dict[str, Any] = {
        "uid": DATASOURCE_UID, "name": DATASOURCE_NAME, "type": "influxdb", "access": "proxy",
        "url": influx_url, "isDefault": False,
        "jsonData": {"dbName": database, "httpMode": "POST", "version": "InfluxQL"},
    }
    if token:
        body["jsonData"]["httpHeaderName1"] = "Authorization"
        body["jsonData"]["driftlineTokenSha256"] = token_fingerprint(token)
        body["secureJsonData"] = {"httpHeaderValue1": f"Token {token}"}
    return body


def _status(exc: Exception) -> int | None:
    if isinstance(exc, GrafanaUnauthorizedError):
        return 401
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


def _message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and response.get("message"):
        return str(response["message"])
    return str(exc)


def _explain(exc: Exception, url: str, doing: str) -> PushError:
    status = _status(exc)
    if status == 401:
        return PushError(f"Grafana at {url} rejected the credentials (401) while {doing}: check --token / "
                         "GRAFANA_TOKEN (a service-account token, or user:password)")
    if status == 403:
        return PushError(f"the token is valid but lacks permission (403) while {doing} on {url}: it needs the "
                         "Admin role (or datasources:write, folders:write and dashboards:write)")
    if status == 412:
        response = getattr(exc, "response", None)
        kind = response.get("status") if isinstance(response, dict) else None
        if kind == "name-exists":
            return PushError(f"{doing}: the folder already holds a dashboard with this title but another uid "
                             f"(412 name-exists): rename or delete that dashboard")
        return PushError(f"{doing}: the dashboard changed in Grafana since it was read (412 {kind or 'precondition'}"
                         f": {_message(exc)}); run the push again")
    if status == 409:
        return PushError(f"{doing}: Grafana reports a conflict (409: {_message(exc)}), e.g. a datasource named "
                         f"{DATASOURCE_NAME!r} or a folder with the same title but another uid: rename or delete it")
    if isinstance(exc, GrafanaTimeoutError):
        return PushError(f"Grafana at {url} did not answer in time while {doing}")
    if isinstance(exc, GrafanaServerError):
        return PushError(f"Grafana at {url} failed while {doing}: {_message(exc)}")
    if isinstance(exc, GrafanaException):
        return PushError(f"Grafana at {url} refused {doing}: {_message(exc)}")
    return PushError(f"cannot connect to Grafana at {url} ({type(exc).__name__}: {exc})")


def _get_or_none(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except GrafanaClientError as exc:
        if _status(exc) == 404:
            return None
        raise


def _differs(sent: dict[str, Any], held: dict[str, Any]) -> list[str]:
    """Keys of ``sent`` whose value Grafana doesn't hold (recursing into dicts; extra keys in ``held`` ignored)."""
    out = []
    for key, value in sent.items():
        if key in ("id", "version", "secureJsonData"):
            continue
        have = held.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            out += [f"{key}.{k}" for k in _differs(value, have)]
        elif have != value:
            out.append(key)
    return out


def _panel_changes(new: dict[str, Any], old: dict[str, Any]) -> str:
    def titled(board: dict[str, Any]) -> dict[str, Any]:
        return {str(p.get("title")): p for p in board.get("panels", [])}

    a, b = titled(new), titled(old)
    changed = sum(1 for t in a if t in b and a[t] != b[t])
    parts = [f"{n} {what}" for n, what in ((len(a.keys() - b.keys()), "panels added"),
                                           (len(b.keys() - a.keys()), "panels removed"),
                                           (changed, "panels changed")) if n]
    other = [k for k in _differs(new, old) if k != "panels"]
    if other:
        parts.append("changed: " + ", ".join(sorted({k.split(".")[0] for k in other})))
    return "; ".join(parts)


def client(url: str, token: str | None, timeout: float = 10.0) -> Any:
    """A grafana-client API; ``token`` is a service-account/API token, or ``user:password`` for basic auth."""
    credential: Any = token
    if token and ":" in token and not token.startswith("glsa_"):
        user, _, password = token.partition(":")
        credential = (user, password)
    return GrafanaApi.from_url(url, credential=credential, timeout=timeout)


def push(url: str, token: str | None, dashboards_dir: Path, *, influx_url: str, database: str,
         influx_token: str | None = None, folder_title: str = "Driftline", api: GrafanaApi | None = None,
         timeout: float = 10.0) -> list[Change]:
    """Create or update the datasource, the folder and every ``*.json`` dashboard; return what changed."""
    boards = load_dashboards(dashboards_dir)
    grafana: Any = api or client(url, token, timeout)
    changes: list[Change] = []
    doing = "reading the datasource"
    try:
        ds = datasource_body(influx_url, database, influx_token)
        current = _get_or_none(grafana.datasource.get_datasource_by_uid, DATASOURCE_UID)
        if current is None:
            doing = "creating the datasource"
            grafana.datasource.create_datasource(ds)
            changes.append(Change("datasource", DATASOURCE_UID, "created", f"{redact_url(influx_url)} db={database}"))
        else:
            if not influx_token and (current.get("jsonData") or {}).get("httpHeaderName1"):
                # keep the token Grafana already holds: don't drop the header by re-pushing without --influx-token
                ds["jsonData"]["httpHeaderName1"] = current["jsonData"]["httpHeaderName1"]
                if "driftlineTokenSha256" in current["jsonData"]:
                    ds["jsonData"]["driftlineTokenSha256"] = current["jsonData"]["driftlineTokenSha256"]
            diff = _differs(ds, current)
            if diff:
                doing = "updating the datasource"
                grafana.datasource.update_datasource_by_uid(DATASOURCE_UID, ds)
                changes.append(Change("datasource", DATASOURCE_UID, "updated", "changed: " + ", ".join(diff)))
            else:
                changes.append(Change("datasource", DATASOURCE_UID, "unchanged", redact_url(influx_url)))

        doing = "reading the folder"
        folder = _get_or_none(grafana.folder.get_folder, FOLDER_UID)
        if folder is None:
            doing = "creating the folder"
            grafana.folder.create_folder(folder_title, uid=FOLDER_UID)
            changes.append(Change("folder", FOLDER_UID, "created", folder_title))
        elif folder.get("title") != folder_title:
            doing = "renaming the folder"
            grafana.folder.update_folder(FOLDER_UID, title=folder_title, version=folder.get("version"))
            changes.append(Change("folder", FOLDER_UID, "updated", f"{folder.get('title')!r} → {folder_title!r}"))
        else:
            changes.append(Change("folder", FOLDER_UID, "unchanged", folder_title))

        for board in boards:
            uid = board["uid"]
            doing = f"reading dashboard {uid}"
            existing = _get_or_none(grafana.dashboard.get_dashboard, uid)
            held = (existing or {}).get("dashboard") or {}
            in_folder = ((existing or {}).get("meta") or {}).get("folderUid", FOLDER_UID) == FOLDER_UID
            if existing is not None and not _differs(board, held) and in_folder:
                changes.append(Change("dashboard", uid, "unchanged", f"{board['title']} (v{held.get('version')})"))
                continue
            body = {k: v for k, v in board.items() if k != "id"}
            body.pop("version", None)
            if existing is not None:
                body["version"] = held.get("version")
            doing = f"{'updating' if existing is not None else 'creating'} dashboard {uid}"
            result = grafana.dashboard.update_dashboard({"dashboard": body, "folderUid": FOLDER_UID,
                                                         "overwrite": False, "message": PUSH_MESSAGE})
            new_version = (result or {}).get("version") if isinstance(result, dict) else None
            if existing is None:
                changes.append(Change("dashboard", uid, "created", f"{board['title']} (v{new_version})"))
            else:
                what = _panel_changes(board, held) or ("moved to the folder" if not in_folder else "changed")
                changes.append(Change("dashboard", uid, "updated",
                                      f"{board['title']} (v{held.get('version')} → v{new_version}): {what}"))
    except PushError:
        raise
    except Exception as exc:
        raise _explain(exc, url, doing) from None
    return changes


def remote_status(url: str, token: str | None, dashboards_dir: Path, *, api: GrafanaApi | None = None,
                  timeout: float = 10.0) -> list[RemoteStatus]:
    """Compare the local dashboards with those tagged ``driftline`` in Grafana (search API)."""
    boards = {b["uid"]: b for b in load_dashboards(dashboards_dir)}
    grafana: Any = api or client(url, token, timeout)
    doing = "searching dashboards"
    try:
        found = grafana.search.search_dashboards(tag=DASHBOARD_TAG, type_="dash-db") or []
        remote = {hit["uid"]: hit for hit in found if hit.get("uid")}
        out = []
        for uid, board in boards.items():
            if uid not in remote:
                out.append(RemoteStatus(uid, board["title"], True, None, "missing"))
                continue
            doing = f"reading dashboard {uid}"
            held = (grafana.dashboard.get_dashboard(uid) or {}).get("dashboard") or {}
            out.append(RemoteStatus(uid, board["title"], True, held.get("version"),
                                    "differs" if _differs(board, held) else "in sync"))
        for uid in sorted(remote.keys() - boards.keys()):
            out.append(RemoteStatus(uid, str(remote[uid].get("title")), False, None, "not local"))
        return out
    except Exception as exc:
        raise _explain(exc, url, doing) from None
