"""The worker's batch decoding gets the decode options of the settings: producers' own field names, epoch
milliseconds, the Kafka record's time, and the wall-clock rule with the cycle's clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from faust.types import TP

from monitor.adapters.cycle import WorkerCycle
from monitor.config import MonitorSettings
from monitor.owner import ReferenceBook
from tests.adapters.test_cycle import REF, T0, Acker, Broker, Bus, Clock, Sink


@dataclass
class Record:
    offset: int
    value: bytes
    timestamp: int = -1
    key: bytes | None = None


def _cycle(**settings: object) -> tuple[WorkerCycle, Clock]:
    st = MonitorSettings(window="10s", allowed_lateness="1s", idle_timeout="30s", labels_topic="", consumer_group="t",
                         **settings)
    broker, clock = Broker(), Clock()
    clock.now = T0 + 60.0
    acker = Acker(broker)
    cycle = WorkerCycle(st, ReferenceBook([REF]), 2, Sink(), None, Bus(broker), acker, clock=clock, positions=acker)
    cycle.assign({0, 1}, {0, 1}, epoch=1, checkpoints={})
    return cycle, clock


def _observed(cycle: WorkerCycle) -> int:
    return sum(s.events for src in cycle.sources.values() for mp in src.models.values() for s in mp.open.values())


def test_producers_field_names_and_milliseconds_reach_the_windows():
    cycle, _ = _cycle(fields={"model": "model_name", "features": "payload.inputs", "timestamp": "ts_ms"},
                      timestamp_unit="ms")
    records = [Record(i, orjson.dumps({"model_name": "m", "request_id": f"r{i}", "ts_ms": int((T0 + i) * 1000),
                                       "payload": {"inputs": {"x": 0.1 * i, "c": "a"}}, "prediction": 1}))
               for i in range(20)]
    cycle.ingest([(TP(cycle.settings.predictions_topic, 0), records)])
    assert not cycle.out.dlq
    assert _observed(cycle) == 20
    state = next(iter(cycle.sources[0].models["m"].open.values()))
    assert state.num_counts is not None and int(state.num_counts.sum()) > 0  # binned with the reference


def test_the_record_time_and_the_wall_clock_rule():
    cycle, clock = _cycle(timestamp_source="record", max_future_skew="10m")
    records = [Record(i, orjson.dumps({"model": "m", "request_id": f"r{i}", "features": {"x": 1.0},
                                       "prediction": 0}), timestamp=int((T0 + i) * 1000)) for i in range(10)]
    records.append(Record(10, orjson.dumps({"model": "m", "request_id": "late-clock", "features": {},
                                            "prediction": 0}), timestamp=int((clock.now + 7200) * 1000)))
    cycle.ingest([(TP(cycle.settings.predictions_topic, 1), records)])
    assert _observed(cycle) == 10
    assert [r.offset for r, _, _ in cycle.out.dlq] == [10]
    assert "ahead of the wall clock" in cycle.out.dlq[0][0].reason
    asyncio.run(cycle.flush())
