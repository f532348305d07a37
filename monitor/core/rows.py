"""One model's predictions of a batch, as columns: what stage 1 (:mod:`monitor.source`) observes.

Rows come from :class:`~monitor.types.PredictionEvent` objects (replay, tests) or straight from the worker's
batch decoder (:mod:`monitor.fastdecode`), whose records carry the same fields but leave the features
unparsed until they are binned — already binned, for the model's reference, in a :class:`FeatureBlock`.
Either way the columns are the same; an event object is built only for the rare row that needs one
(quarantined, dead-lettered, or kept for a warm-up profile).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from monitor.core.aggregate import Batch, FeatureBlock
from monitor.core.binning import FeatureBinner
from monitor.core.held import hash_keys
from monitor.types import PredictionEvent


class Rows(Sequence[PredictionEvent]):
    """``items``: events or decoded records (with an ``event()`` method), one model's, in offset order;
    ``ts``: their event times (epoch s); ``block``: their features binned for ``binner``, if known.

    As a sequence, it yields the rows as :class:`PredictionEvent` (built on access for decoded records).

    >>> e = PredictionEvent("m", "r1", 60.0, {"x": 1.0}, 1, "v1", 0.9)
    >>> rows = Rows("m", [e, PredictionEvent("m", "r2", 61.0, {"x": 2.0}, 0, "v2", 0.2)])
    >>> rows.ts.tolist(), rows.versions(), rows.take(np.array([1]))[0].request_id
    ([60.0, 61.0], ['v1', 'v2'], 'r2')
    """

    __slots__ = ("_keys", "_predictions", "binner", "block", "items", "model", "ts")

    def __init__(self, model: str, items: Sequence[Any], ts: np.ndarray | None = None,
                 block: FeatureBlock | None = None, binner: FeatureBinner | None = None) -> None:
        self.model = model
        self.items = items
        self.ts = ts if ts is not None else np.fromiter((e.timestamp for e in items), dtype=np.float64,
                                                        count=len(items))
        self.block = block
        self.binner = binner
        self._keys: np.ndarray | None = None
        self._predictions: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        item = self.items[i]
        return item if type(item) is PredictionEvent else item.event()

    @property
    def keys(self) -> np.ndarray:
        """64-bit hashes of the request ids (``monitor.core.held``)."""
        if self._keys is None:
            self._keys = hash_keys([e.request_id for e in self.items])
        return self._keys

    def versions(self) -> list[str | None]:
        return [e.model_version for e in self.items]

    def predictions(self) -> list[Any]:
        if self._predictions is None:
            self._predictions = [e.prediction for e in self.items]
        return self._predictions

    def take(self, rows: np.ndarray) -> Rows:
        """The rows at the indices ``rows`` (in that order)."""
        items = self.items
        idx = rows.tolist()
        out = Rows(self.model, [items[i] for i in idx], self.ts[rows],
                   self.block.take(rows) if self.block is not None else None, self.binner)
        if self._keys is not None:
            out._keys = self._keys[rows]
        if self._predictions is not None:
            out._predictions = [self._predictions[i] for i in idx]
        return out

    def batch(self, binner: FeatureBinner | None) -> Batch:
        """The rows' columns; features binned for ``binner`` (reusing :attr:`block` when it was binned for
        the same binner)."""
        block = self.block if binner is not None and binner is self.binner else None
        if block is None and all(type(e) is PredictionEvent for e in self.items):
            return Batch.build(self.items, binner, ts=self.ts, predictions=self.predictions())
        if binner is not None and block is None:
            block = FeatureBlock.of_events(list(self), binner)
        return Batch.build(self, binner, items=self.items, block=block, ts=self.ts, predictions=self.predictions())
