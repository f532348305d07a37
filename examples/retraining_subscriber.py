"""Act on Driftline's retraining requests: the shape a retraining pipeline can copy.

    python examples/retraining_subscriber.py --bootstrap 127.0.0.1:9092 -- ./retrain.sh

A kafka-python consumer in a consumer group reads the CloudEvents Driftline publishes on
``monitor.retraining`` and, once per event ``id``, runs a command with the event's fields in its
environment:

=========================== =========================================================================
``DRIFTLINE_EVENT_ID``      the CloudEvent ``id`` (deterministic: the same request always has the same id)
``DRIFTLINE_MODEL``         ``data.model``
``DRIFTLINE_MODEL_VERSION`` ``data.model_version`` (may be empty)
``DRIFTLINE_REASON``        ``drift``, ``performance`` or ``data_quality``
``DRIFTLINE_DRIFT_SINCE``   RFC 3339 start of the first window of the streak that triggered the request
``DRIFTLINE_WINDOW_START``  RFC 3339 start of the window that completed the streak
``DRIFTLINE_WINDOW_END``    … and its end: ``[DRIFT_SINCE, WINDOW_END)`` is the data that moved
``DRIFTLINE_REFERENCE``     ``sha256:…`` content hash of the reference profile it was compared against
``DRIFTLINE_FEATURES``      comma-separated features named in the evidence
``DRIFTLINE_SEGMENTS``      comma-separated segments (``country=PL``) named in the evidence; empty: the whole model
``DRIFTLINE_EVIDENCE``      the evidence list as JSON
``DRIFTLINE_EVENT``         the whole CloudEvent as JSON
=========================== =========================================================================

Delivery is at least once at every hop (Driftline re-publishes after a crash, Kafka redelivers what
was not committed), so the subscriber dedupes on the event ``id``: ids whose command succeeded are kept
in a small SQLite file (``--state``), and a record's offset is committed only after its command ran (or
the record was recognised as a duplicate or as not a retraining event). A command that fails is retried
``--attempts`` times, then logged and left out of the state file, so a later redelivery of the same id
tries again. The one window for a double run: a crash after the command succeeded and before its id was
stored — make the command idempotent (e.g. key the training run on ``DRIFTLINE_EVENT_ID``).

Standard library plus kafka-python (a Driftline dependency). ``--exit-when-idle N`` stops after N
seconds without records (for tests and batch-style runs); SIGTERM/SIGINT stop after the current record.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

log = logging.getLogger("retraining-subscriber")
EVENT_TYPE = "io.driftline.retraining.requested"


class SeenIds:
    """Ids of events whose command succeeded, in SQLite (survives restarts; safe for one process)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS done (id TEXT PRIMARY KEY, model TEXT, at REAL)")
        self.db.commit()

    def __contains__(self, event_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM done WHERE id = ?", (event_id,)).fetchone() is not None

    def add(self, event_id: str, model: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO done VALUES (?, ?, ?)", (event_id, model, time.time()))
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def environment(event: dict[str, Any]) -> dict[str, str]:
    """The ``DRIFTLINE_*`` variables for one retraining CloudEvent."""
    data = event.get("data") or {}
    window = data.get("window") or {}
    evidence = data.get("evidence") or []
    features = sorted({str(e.get("feature", "")) for e in evidence if isinstance(e, dict)} - {""})
    segments = sorted({str(e.get("segment", "")) for e in evidence if isinstance(e, dict)} - {""})
    return {
        "DRIFTLINE_EVENT_ID": str(event["id"]),
        "DRIFTLINE_MODEL": str(data.get("model", event.get("subject", ""))),
        "DRIFTLINE_MODEL_VERSION": str(data.get("model_version", "")),
        "DRIFTLINE_REASON": str(data.get("reason", "")),
        "DRIFTLINE_DRIFT_SINCE": str(data.get("drift_since", window.get("start", ""))),
        "DRIFTLINE_WINDOW_START": str(window.get("start", "")),
        "DRIFTLINE_WINDOW_END": str(window.get("end", "")),
        "DRIFTLINE_REFERENCE": str(data.get("reference", "")),
        "DRIFTLINE_FEATURES": ",".join(features),
        "DRIFTLINE_SEGMENTS": ",".join(segments),
        "DRIFTLINE_EVIDENCE": json.dumps(evidence),
        "DRIFTLINE_EVENT": json.dumps(event),
    }


def parse(raw: bytes | None) -> dict[str, Any] | None:
    """The CloudEvent in a record, or None when the record is not a Driftline retraining request."""
    try:
        event = json.loads(raw or b"")
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") != EVENT_TYPE or not event.get("id"):
        return None
    return event


def run_command(command: list[str], env: dict[str, str], attempts: int, backoff_s: float) -> bool:
    """Run ``command`` with ``env`` added to this process's environment; retry on a non-zero exit."""
    for attempt in range(1, attempts + 1):
        result = subprocess.run(command, env={**os.environ, **env}, check=False)
        if result.returncode == 0:
            return True
        log.warning("command exited with %d for %s (attempt %d of %d)", result.returncode,
                    env["DRIFTLINE_EVENT_ID"], attempt, attempts)
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run a command once per Driftline retraining request.",
                                 usage="%(prog)s [options] -- COMMAND [ARG ...]")
    ap.add_argument("--bootstrap", default=os.environ.get("DRIFTLINE_BOOTSTRAP", "127.0.0.1:9092"),
                    help="Kafka bootstrap servers (default: $DRIFTLINE_BOOTSTRAP or 127.0.0.1:9092)")
    ap.add_argument("--topic", default="monitor.retraining")
    ap.add_argument("--group", default="driftline-retraining", help="consumer group id")
    ap.add_argument("--state", type=Path, default=Path("retraining-seen.sqlite"),
                    help="SQLite file of the ids already acted on")
    ap.add_argument("--attempts", type=int, default=3, help="runs of a failing command before giving up")
    ap.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry (doubles)")
    ap.add_argument("--exit-when-idle", type=float, default=0.0,
                    help="exit after this many seconds without a record (0: run until SIGTERM)")
    ap.add_argument("--session-timeout-ms", type=int, default=10_000)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="after --: the command to run per event")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to run after --")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    stop = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    seen = SeenIds(args.state)
    consumer = KafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=args.session_timeout_ms,
                             heartbeat_interval_ms=max(args.session_timeout_ms // 6, 100))
    last = time.monotonic()
    ran = skipped = failed = 0
    try:
        while not stop:
            batches = consumer.poll(timeout_ms=500)
            if not batches:
                if not consumer.assignment():
                    last = time.monotonic()  # still joining the group: not idle yet
                elif args.exit_when_idle and time.monotonic() - last >= args.exit_when_idle:
                    break
                continue
            last = time.monotonic()
            for records in batches.values():
                for record in records:
                    event = parse(record.value)
                    if event is None:
                        log.warning("skipping a record that is not a retraining request (%s[%d]@%d)",
                                    record.topic, record.partition, record.offset)
                    elif event["id"] in seen:
                        skipped += 1
                        log.info("duplicate %s for %s: already done", event["id"], event.get("subject"))
                    else:
                        env = environment(event)
                        log.info("retraining %s (reason %s, data since %s, reference %s)", env["DRIFTLINE_MODEL"],
                                 env["DRIFTLINE_REASON"], env["DRIFTLINE_DRIFT_SINCE"], env["DRIFTLINE_REFERENCE"])
                        if run_command(command, env, args.attempts, args.backoff):
                            seen.add(event["id"], env["DRIFTLINE_MODEL"])
                            ran += 1
                        else:
                            failed += 1
                            log.error("giving up on %s after %d attempts", event["id"], args.attempts)
                    # this record is handled: commit exactly up to it (not the rest of the fetched batch)
                    consumer.commit({TopicPartition(record.topic, record.partition):
                                     OffsetAndMetadata(record.offset + 1, "", -1)})
                    if stop:
                        break
                if stop:
                    break
    finally:
        consumer.close()
        seen.close()
    log.info("done: %d run, %d duplicates skipped, %d failed", ran, skipped, failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
