"""The compact table of held predictions against a plain dict model: random adds, lookups, label joins and
expiry (with ring growth, shrinking and index rebuilds) give the same answers; memory per entry."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.held import HeldPredictions, _order, hash_keys

values = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.sampled_from(["a", "b"]),
                   st.text(max_size=3))
ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(st.tuples(st.integers(0, 300), values), max_size=80), st.floats(0, 100)),
    st.tuples(st.just("take"), st.lists(st.integers(0, 300), max_size=40)),
    st.tuples(st.just("contains"), st.lists(st.integers(0, 300), max_size=40)),
    st.tuples(st.just("expire"), st.floats(0, 200)),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(ops, st.booleans())
def test_behaves_like_a_dict_of_segments(program, high_bits):
    h = HeldPredictions(with_predictions=True)
    model: dict[int, list] = {}  # key -> [ts, prediction, version, taken, group]
    segments: list[tuple[float, list[int]]] = []
    shift = 40 if high_bits else 0  # keys differing only in low bits, or only in high bits

    def key(k: int) -> int:
        return (k << shift) % 2**64

    for op in program:
        if op[0] == "add":
            _, rows, t0 = op
            fresh, seen = [], set()
            for k, v in rows:
                if key(k) not in model and key(k) not in seen:
                    seen.add(key(k))
                    fresh.append((key(k), v))
            if not fresh:
                continue
            keys = np.array([k for k, _ in fresh], dtype=np.uint64)
            ts = t0 + np.arange(len(fresh), dtype=np.float64) / 10
            version = len(segments) % 3
            groups = np.arange(len(fresh), dtype=np.int32) % 4 if len(segments) % 2 else None
            h.add(keys, ts, [v for _, v in fresh], version, groups)
            for j, ((k, v), t) in enumerate(zip(fresh, ts.tolist(), strict=True)):
                model[k] = [t, v, version, False, j % 4 if groups is not None else -1]
            segments.append((float(ts.max()), [k for k, _ in fresh]))
        elif op[0] == "take":
            keys = [key(k) for k in op[1]]
            found, ts, preds, vers, groups = h.take(np.array(keys, dtype=np.uint64))
            expected = []
            for k in keys:
                e = model.get(k)
                ok = e is not None and not e[3] and e[1] is not None
                expected.append(ok)
                if ok:
                    e[3] = True
            assert found.tolist() == expected
            want = [model[k] for k, ok in zip(keys, expected, strict=True) if ok]
            assert ts.tolist() == [w[0] for w in want]
            assert vers.tolist() == [w[2] for w in want]
            assert groups.tolist() == [w[4] for w in want]
            for got, w in zip(preds, want, strict=True):
                assert got == w[1] and type(got) is type(w[1])
        elif op[0] == "contains":
            keys = [key(k) for k in op[1]]
            assert h.contains(np.array(keys, dtype=np.uint64)).tolist() == [k in model for k in keys]
        else:
            wm = op[1]
            dropped = 0
            while segments and segments[0][0] + 5.0 < wm:
                _, ks = segments.pop(0)
                for k in ks:
                    del model[k]
                dropped += len(ks)
            assert h.expire(wm, 5.0) == dropped
        assert len(h) == len(model)


def test_a_million_held_predictions_take_at_most_48_bytes_each():
    h = HeldPredictions(with_predictions=True)
    rng = np.random.default_rng(0)
    n, batch = 1_000_000, 5_000
    ids = [f"req-{i}" for i in range(n)]
    keys = hash_keys(ids)
    preds = rng.integers(0, 2, n).tolist()
    for i in range(0, n, batch):
        k = keys[i:i + batch]
        assert not h.contains(k).any()
        h.add(k, np.full(k.size, float(i)), preds[i:i + batch])
    assert len(h) == n
    assert h.nbytes() / n <= 48, h.nbytes() / n
    assert h.contains(keys[::1000]).all()
    found, _, got, _, _ = h.take(keys[:10])
    assert found.all() and got == preds[:10]
    without = HeldPredictions(with_predictions=False)
    for i in range(0, n, batch):
        without.add(keys[i:i + batch], np.full(batch, float(i)))
    assert without.nbytes() / n <= 32, without.nbytes() / n
    assert without.contains(keys[-5:]).all()


@given(st.lists(st.integers(0, 2**32 - 1), max_size=300) | st.lists(st.integers(0, 70_000), max_size=300))
def test_bucket_order_is_a_stable_argsort(buckets):
    b = np.array(buckets, dtype=np.int64)
    np.testing.assert_array_equal(_order(b), np.argsort(b, kind="stable"))
