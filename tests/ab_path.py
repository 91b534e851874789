"""The A/B flow's two keyed steps in memory: a ledger per shard of ids, the sums per experiment."""

from __future__ import annotations

import pickle
from typing import Self

from driftline.ab.ledger import SHARDS, IdLedger, answered_id, shard_of
from driftline.ab.report import ExperimentStats
from driftline.topics import ABReport, InferenceResult, Labeled


class ABPath:
    """What `flows.ab` does with one experiment's messages, without Bytewax. `shards` groups the
    flow's ledgers (fewer: several per ledger, as at high traffic)."""

    def __init__(
        self,
        experiment: str = "exp",
        horizon: float = 1e9,
        alpha: float = 0.05,
        shards: int = SHARDS,
    ) -> None:
        self.horizon, self.shards = horizon, shards
        self.ledgers: dict[int, IdLedger] = {}
        self.stats = ExperimentStats(experiment, alpha)

    def feed(self, message: InferenceResult | Labeled) -> Self:
        shard = shard_of(answered_id(message)) % self.shards
        ledger = self.ledgers.setdefault(shard, IdLedger(self.horizon))
        if isinstance(message, InferenceResult):
            self.stats.apply_all(ledger.on_result(message))
        else:
            self.stats.apply_all(ledger.on_labeled(message))
        return self

    def restarted(self) -> ABPath:
        """The same path after a snapshot, pickled as Bytewax does, and a restart."""
        states = pickle.loads(
            pickle.dumps(
                ({k: v.to_state() for k, v in self.ledgers.items()}, self.stats.to_state())
            )
        )
        path = ABPath(horizon=self.horizon, shards=self.shards)
        path.ledgers = {k: IdLedger.from_state(v) for k, v in states[0].items()}
        path.stats = ExperimentStats.from_state(states[1])
        return path

    def report(self) -> ABReport:
        return self.stats.report()
