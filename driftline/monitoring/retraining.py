"""Which alerts ask for a model to be retrained: one request per drift episode.

An alert on one of the configured metrics (`RetrainSettings.metrics`: by default prediction
drift `ks_d`, feature drift `mmd` and `domain_auc`, and the feedback `brier`) requests a
retraining of the alerting model, unless that model requested one less than
`RetrainSettings.cooldown_seconds` of event time earlier: one drift episode raises several
alerts (KS, MMD and the domain AUC within a few windows), and it should train one challenger.
The cool-down runs on the alerts' window ends, not on the wall clock, so a replay after a crash
decides the same. A request's id is a digest of (model, alert id): a re-emitted alert yields
the same request, and `driftline retrain` trains it once.

>>> from datetime import UTC, datetime
>>> from driftline.settings import RetrainSettings
>>> from driftline.topics import Alert, ModelRef
>>> def alert(metric: str, minute: int) -> Alert:
...     end = datetime(2026, 11, 29, 10, minute, tzinfo=UTC)
...     return Alert(alert_id=f"{metric}-{minute}", model=ModelRef(name="m", version="1"),
...                  metric=metric, value=1.0, window_end=end, message="", created_at=end)
>>> policy = RetrainPolicy(RetrainSettings(cooldown_seconds=600), clock=lambda: 0.0)
>>> [r.alert_id if (r := policy.on_alert(alert(m, t))) else None
...  for m, t in [("cbpe_f1_drop", 0), ("ks_d", 1), ("mmd", 2), ("mmd", 12)]]
[None, 'ks_d-1', None, 'mmd-12']
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from driftline.clock import Clock, as_utc
from driftline.settings import RetrainSettings
from driftline.topics import Alert, ModelRef, RetrainRequest


def request_id(model: ModelRef, alert_id: str) -> str:
    """The request an alert makes: the same for the same (model, alert), in any process.

    >>> request_id(ModelRef(name="m", version="1"), "a") == request_id(
    ...     ModelRef(name="m", version="1"), "a")
    True
    """
    return hashlib.sha256(f"{model.key}/{alert_id}".encode()).hexdigest()[:32]


class RetrainPolicy:
    """The retraining requests of one model version's alerts, with a cool-down in event time."""

    def __init__(
        self, config: RetrainSettings, clock: Clock, state: dict[str, Any] | None = None
    ) -> None:
        self.metrics = config.metric_set
        self.cooldown = config.cooldown_seconds
        self.clock = clock
        self.last_requested: float | None = (state or {}).get("last_requested")
        """Window end (epoch seconds) of the alert behind the latest request."""

    def on_alert(self, alert: Alert) -> RetrainRequest | None:
        """A request for `alert`, or None (another metric, or within the cool-down)."""
        if alert.metric not in self.metrics:
            return None
        end = alert.window_end.timestamp()
        last = self.last_requested
        if last is not None and last <= end < last + self.cooldown:
            return None
        self.last_requested = end
        return RetrainRequest(
            request_id=request_id(alert.model, alert.alert_id),
            model=alert.model,
            alert_id=alert.alert_id,
            metric=alert.metric,
            window_end=alert.window_end,
            requested_at=as_utc(self.clock()),
        )

    def to_state(self) -> dict[str, Any]:
        return {"last_requested": self.last_requested}


def feedback_label(scores: Sequence[float], min_scores: int) -> int | None:
    """The label feedback gives an inference: its mean score rounded (a mean of exactly 0.5
    counts as positive, as the A/B flow's realized accuracy does), or None with fewer than
    `min_scores` scores.

    >>> feedback_label([1.0, 0.0, 1.0], 3), feedback_label([0.5, 0.5], 2), feedback_label([1.0], 2)
    (1, 1, None)
    """
    if len(scores) < min_scores or not scores:
        return None
    return int(sum(scores) / len(scores) >= 0.5)
