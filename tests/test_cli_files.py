"""The command line on awkward files and producers: one clear line and a non-zero exit, never a traceback;
events in epoch milliseconds and under the producer's own field names are monitored like Driftline's own."""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.scenarios import write_reference_table, write_scenario

W = 60.0
runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in list(os.environ):
        if var.upper().startswith("MONITOR_"):
            monkeypatch.delenv(var)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    events, _ = write_scenario("mixed", d / "mixed.jsonl", seed=5, windows=6, window_s=W, rate=8.0)
    tables = write_reference_table("mixed", d / "refs", rows=5_000, seed=5)
    r = runner.invoke(app, ["reference", "build", "--model", "fraud", "--data", str(tables["fraud"]),
                            "--out", str(d / "fraud.json")])
    assert r.exit_code == 0, r.output
    return d, events


def invoke(*args: str):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception  # never a traceback
    return r


def test_replay_out_pointing_at_a_file(scenario, tmp_path):
    d, events = scenario
    (tmp_path / "out").write_text("not a directory")
    r = invoke("replay", events, "--reference", d / "fraud.json", "--out", tmp_path / "out")
    assert r.exit_code == 2 and f"--out {tmp_path / 'out'} is a file" in r.output


def test_reference_build_out_into_a_missing_directory(scenario, tmp_path):
    d, _ = scenario
    target = tmp_path / "missing" / "fraud.json"
    r = invoke("reference", "build", "--model", "fraud", "--data", d / "refs" / "fraud.reference.csv", "--out", target)
    assert r.exit_code == 2 and f"directory {tmp_path / 'missing'} does not exist" in r.output
    assert not target.parent.exists()
    r = invoke("reference", "build", "--model", "fraud", "--data", d / "refs" / "fraud.reference.csv", "--out", tmp_path)
    assert r.exit_code == 2 and "is a directory" in r.output


def test_empty_events_file_says_so_and_claims_no_files(scenario, tmp_path):
    d, _ = scenario
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n  \n")
    r = invoke("replay", empty, "--reference", d / "fraud.json", "--out", tmp_path / "out")
    assert r.exit_code == 1 and "no events (the file is empty" in r.output
    assert "metrics.lp" not in r.output and not (tmp_path / "out" / "metrics.lp").exists()


def test_byte_order_mark_does_not_dead_letter_the_first_line(scenario, tmp_path):
    d, events = scenario
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + events.read_bytes())
    plain = invoke("replay", events, "--reference", d / "fraud.json", "--out", tmp_path / "plain")
    with_bom = invoke("replay", bom, "--reference", d / "fraud.json", "--out", tmp_path / "bom")
    assert plain.exit_code == with_bom.exit_code == 0, with_bom.output
    assert (tmp_path / "bom" / "dlq.jsonl").read_bytes() == (tmp_path / "plain" / "dlq.jsonl").read_bytes()
    assert (tmp_path / "bom" / "metrics.lp").read_text() == (tmp_path / "plain" / "metrics.lp").read_text()


def _events(model: str, n: int = 300):
    return b"".join(json.dumps({"model": model, "request_id": f"{model}-{i}", "timestamp": 1_767_225_600 + i,
                                "features": {"amount": float(i % 7)}, "prediction": i % 2}).encode() + b"\n"
                    for i in range(n))


def test_reference_for_another_model_fails_loudly(scenario, tmp_path):
    """A profile built with --model fraud replayed on events of model 'fraud-v2' only: no drift can be
    computed, so the replay says which models lacked a reference and exits 1."""
    d, _ = scenario
    f = tmp_path / "other.jsonl"
    f.write_bytes(_events("fraud-v2"))
    r = invoke("replay", f, "--reference", d / "fraud.json", "--out", tmp_path / "out")
    assert r.exit_code == 1, r.output
    assert "no reference for model(s) 'fraud-v2': drift was not computed" in r.output
    assert "the reference is for 'fraud'" in r.output


def test_reference_for_some_models_warns(scenario, tmp_path):
    d, events = scenario
    f = tmp_path / "both.jsonl"
    f.write_bytes(events.read_bytes() + _events("churn"))
    r = invoke("replay", f, "--reference", d / "fraud.json", "--out", tmp_path / "out")
    assert r.exit_code == 0 and "warning: no reference for model(s) 'churn'" in r.output.replace("\n", " ")


def test_timestamp_source_record_cannot_replay_a_file(scenario, tmp_path):
    d, events = scenario
    cfg = tmp_path / "c.yaml"
    cfg.write_text("timestamp_source: record\n")
    r = invoke("replay", events, "--reference", d / "fraud.json", "--out", tmp_path / "out", "--config", cfg)
    assert r.exit_code == 2 and "a file has no record timestamps" in r.output


def test_bad_window_names_the_option(scenario, tmp_path):
    d, events = scenario
    r = invoke("replay", events, "--out", tmp_path / "out", "--window", "1000000w")
    assert r.exit_code == 2 and "window: must be at most 366d" in r.output
    assert "from command-line option --window" in r.output


def test_run_with_a_missing_or_malformed_reference_is_one_line(tmp_path):
    r = invoke("run", "--reference", tmp_path / "nope.json")
    assert r.exit_code == 2 and "reference: " in r.output and "no such file or directory" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"format_version": 1, "model": "a\\nb"}')
    r = invoke("run", "--reference", bad)
    assert r.exit_code == 2 and f"error: reference {bad}:" in r.output


PRODUCER = {"model": "model_name", "request_id": "meta.id", "timestamp": "meta.ts_ms", "features": "payload.inputs",
            "prediction": "output", "score": "proba", "latency_ms": "latency", "error": "err", "label": "y"}


def _as_producer(line: bytes) -> bytes:
    """An event as a Java service might log it: its own field names, nested objects, epoch milliseconds."""
    try:
        e = json.loads(line)
    except ValueError:
        return line  # malformed lines stay malformed
    if not isinstance(e, dict) or not isinstance(e.get("timestamp"), str | int | float):
        return line
    from monitor.events import producer_shaped
    from monitor.timestamps import parse_timestamp

    try:
        e["timestamp"] = round(parse_timestamp(e["timestamp"]) * 1000)
    except ValueError:
        return line
    return json.dumps(producer_shaped(e, PRODUCER)).encode()


def test_millisecond_producer_with_its_own_field_names_is_monitored_like_ours(scenario, tmp_path):
    """The same traffic, logged by a producer with epoch-ms times and its own nested field names, replayed
    with a ``fields`` mapping, gives exactly the metrics, alerts and retraining requests of the original."""
    d, events = scenario
    theirs = tmp_path / "theirs.jsonl"
    theirs.write_bytes(b"".join(_as_producer(line) + b"\n" for line in events.read_bytes().splitlines()))
    assert b'"model_name"' in theirs.read_bytes() and b'"ts_ms"' in theirs.read_bytes()
    cfg = tmp_path / "producer.yaml"
    cfg.write_text("timestamp_unit: auto\nfields:\n" + "".join(f"  {k}: {v}\n" for k, v in PRODUCER.items()))
    ours = invoke("replay", events, "--reference", d / "fraud.json", "--out", tmp_path / "ours", "--window", "1m")
    mapped = invoke("replay", theirs, "--reference", d / "fraud.json", "--out", tmp_path / "mapped",
                    "--window", "1m", "--config", cfg)
    assert ours.exit_code == mapped.exit_code == 0, mapped.output
    assert (tmp_path / "mapped" / "metrics.lp").read_text() == (tmp_path / "ours" / "metrics.lp").read_text()
    for name in ("alerts.jsonl", "retraining.jsonl"):
        assert (tmp_path / "mapped" / name).read_bytes() == (tmp_path / "ours" / name).read_bytes()
    ours_dlq = [orjson.loads(x)["reason"] for x in (tmp_path / "ours" / "dlq.jsonl").read_bytes().splitlines()]
    mapped_dlq = [orjson.loads(x)["reason"] for x in (tmp_path / "mapped" / "dlq.jsonl").read_bytes().splitlines()]
    assert len(ours_dlq) == len(mapped_dlq)
    assert Path(tmp_path / "mapped" / "metrics.lp").stat().st_size > 1000
