"""What an experiment remembers per inference id, in shards, and the changes it passes on.

An experiment's statistics (`driftline.ab.report.ExperimentStats`) are sums over inferences, but
keeping them right needs a memory per inference id for the feedback time-to-live: a re-delivered
result or labeled message must count once, a labeled message carries all feedback so far and
replaces the inference's earlier contribution, and a shadow result pairs with the inference it
shadows whichever comes first. At 200 requests/s for an hour that is 720,000 ids; kept in one
state per experiment, Bytewax pickled all of them at every snapshot (568 ms and 42 MB each
second). So the memory is split into `SHARDS` ledgers by a stable hash of the answered id
(`shard_of`), each its own Bytewax key: a snapshot pickles only the shards that changed in it,
about as many as messages came (200/s touch ~199 of 16,384 shards, ~1% of the ids).

A ledger turns each message into `Change`s (`Traffic`, `Scores`, `ShadowScored`,
`ShadowPaired`): the difference it makes to the sums, already de-duplicated, which
`ExperimentStats.apply` adds up per experiment. Ids are remembered for `horizon` seconds of the
shard's newest event time, and forgotten in sweeps of the whole shard, at most 16 per horizon.

Example
-------
>>> import uuid
>>> from driftline.clock import utc_now
>>> result = InferenceResult(inference_id=uuid.uuid4(), created_at=utc_now(), data="x",
...                         experiment="exp", arm="A", prediction=0.9, label=1, scored_at=utc_now())
>>> ledger = IdLedger(horizon=3600.0)
>>> [type(c).__name__ for c in ledger.on_result(result)]
['Traffic']
>>> ledger.on_result(result)   # re-delivered
[]
>>> 0 <= shard_of(str(result.inference_id)) < SHARDS
True
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Self

from driftline.shards import SHARDS, shard_of
from driftline.topics import InferenceResult, Labeled, ModelRef

__all__ = [
    "SHARDS",
    "Change",
    "IdLedger",
    "Scores",
    "ShadowPaired",
    "ShadowScored",
    "Traffic",
    "answered_id",
    "shard_of",
]


def answered_id(message: InferenceResult | Labeled) -> str:
    """The id whose ledger a message belongs to: a shadow's answered inference, else its own."""
    if isinstance(message, InferenceResult) and message.shadow_of is not None:
        return str(message.shadow_of)
    return str(message.inference_id)


class Traffic(NamedTuple):
    """An answered result, counted once."""

    arm: str
    model: ModelRef | None
    at: datetime


class Scores(NamedTuple):
    """An answered inference's feedback grew from `before` to `after` (all its scores)."""

    arm: str
    label: int
    prediction: float
    before: tuple[float, ...]
    after: tuple[float, ...]
    at: datetime


class ShadowScored(NamedTuple):
    """A shadow arm's result, counted once per answered inference."""

    arm: str
    model: ModelRef | None
    at: datetime


class ShadowPaired(NamedTuple):
    """A shadow's label meets its answered inference's label (`paired`: the first time) and
    feedback scores not yet compared."""

    arm: str
    shadow_label: int
    answered_label: int
    scores: tuple[float, ...]
    paired: bool


Change = Traffic | Scores | ShadowScored | ShadowPaired


class _Seen(NamedTuple):
    arm: str
    at: float
    label: int
    scores: tuple[float, ...]
    traffic: bool
    """Whether its result counted as traffic: its feedback can come first, from another topic."""


class IdLedger:
    """The ids of one shard of an experiment, and what each has contributed so far."""

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self.seen: dict[str, _Seen] = {}
        """Answered inference id -> what it has contributed. Entries are replaced, never
        changed, so a snapshot is a shallow copy."""
        self.shadows: dict[str, tuple[dict[str, int], float]] = {}
        """Answered inference id -> ({shadow arm: its label}, event time)."""
        self.latest = float("-inf")
        self.swept = float("-inf")

    def on_result(self, result: InferenceResult) -> list[Change]:
        if result.arm is None or result.prediction is None:
            return []
        label = result.label if result.label is not None else 0  # as `Answered.of` does
        if result.shadow_of is not None:
            return self._on_shadow(result, label)
        key = str(result.inference_id)
        entry = self.seen.get(key)
        if entry is not None and entry.traffic:
            return []  # re-delivered
        changes: list[Change] = []
        if entry is None:
            self._remember(key, _Seen(result.arm, result.created_at.timestamp(), label, (), True))
            changes += self._pairs(key, label, (), paired=True)
        else:  # its feedback came first and counted already; its traffic did not
            self.seen[key] = entry._replace(traffic=True)
        changes.append(Traffic(result.arm, result.model, result.created_at))
        return changes

    def _on_shadow(self, result: InferenceResult, label: int) -> list[Change]:
        assert result.arm is not None
        answered, at = str(result.shadow_of), result.created_at
        labels, first_at = self.shadows.get(answered, ({}, at.timestamp()))
        if result.arm in labels:
            return []  # re-delivered
        self.shadows[answered] = ({**labels, result.arm: label}, first_at)
        self._advance(first_at)
        changes: list[Change] = [ShadowScored(result.arm, result.model, at)]
        entry = self.seen.get(answered)
        if entry is not None:
            changes.append(ShadowPaired(result.arm, label, entry.label, entry.scores, True))
        return changes

    def on_labeled(self, labeled: Labeled) -> list[Change]:
        if labeled.arm is None:
            return []
        key = str(labeled.inference_id)
        known = self.seen.get(key)
        before = () if known is None else known.scores
        after = tuple(labeled.feedback)
        if len(after) <= len(before):
            return []  # re-delivered
        if known is None:  # its result was not seen here (yet): count the feedback anyway
            entry = _Seen(labeled.arm, labeled.created_at.timestamp(), labeled.label, after, False)
        else:
            entry = known._replace(label=labeled.label, scores=after)
        self._remember(key, entry)
        at = max(labeled.created_at, labeled.updated_at)
        scores = Scores(labeled.arm, labeled.label, labeled.prediction, before, after, at)
        if known is None:  # the shadows seen so far pair with it now
            return [*self._pairs(key, labeled.label, after, paired=True), scores]
        return [*self._pairs(key, labeled.label, after[len(before) :], paired=False), scores]

    def _pairs(
        self, key: str, label: int, scores: tuple[float, ...], paired: bool
    ) -> list[ShadowPaired]:
        labels = self.shadows.get(key, ({}, 0.0))[0]
        return [ShadowPaired(arm, shadow, label, scores, paired) for arm, shadow in labels.items()]

    def _remember(self, key: str, entry: _Seen) -> None:
        self.seen[key] = entry
        self._advance(entry.at)

    def _advance(self, at: float) -> None:
        """Move the shard's event time on; sweep out ids past the horizon now and then."""
        self.latest = max(self.latest, at)
        if self.latest - self.swept < self.horizon / 16:
            return
        self.swept = self.latest
        cutoff = self.latest - self.horizon
        self.seen = {k: v for k, v in self.seen.items() if v.at >= cutoff}
        self.shadows = {k: v for k, v in self.shadows.items() if v[1] >= cutoff}

    def to_state(self) -> dict[str, Any]:
        """A copy as builtins, for Bytewax snapshots."""
        return {
            "horizon": self.horizon,
            "seen": {k: tuple(v) for k, v in self.seen.items()},
            "shadows": dict(self.shadows),
            "latest": self.latest,
            "swept": self.swept,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        ledger = cls(state["horizon"])
        ledger.seen = {k: _Seen(*v) for k, v in state["seen"].items()}
        ledger.shadows = {k: (dict(v[0]), v[1]) for k, v in state["shadows"].items()}
        ledger.latest, ledger.swept = state["latest"], state["swept"]
        return ledger
