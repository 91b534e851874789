"""When a model's window raises an alert, and the alert's identity.

A statistic alerts when it goes from below its threshold to above it, not again on every slide
while it stays there (`AlertPolicy.on_report`). Prediction drift (`ks_d`) and feature drift
(`mmd`, `domain_auc`) have a null distribution, so by default (`AlertSettings.rule`) they alert by a
rule across windows with a measured false-alarm rate (`driftline.monitoring.rules`: CUSUM or
persistence on each window's null z score) instead of a fixed level; the CBPE drop and the
Brier score have no null here and keep their fixed levels. A change detector (River's ADWIN or
Page-Hinkley) on the per-event error stream alerts at the event where the error rate changes
(`AlertPolicy.on_error`). An alert's id is a digest of (model, metric, window end, identity),
so a window re-emitted after a crash yields the same id and the lake stores it once.

>>> from driftline.settings import AlertSettings, MonitorSettings
>>> from driftline.topics import ModelRef
>>> policy = AlertPolicy(ModelRef(name="m", version="1"), AlertSettings(), MonitorSettings(),
...                      reference_f1=0.8, clock=lambda: 0.0)
>>> [check.metric for check in policy.checks(ks_d=0.3, auc=None, feature_drift=None,
...                                         cbpe_f1=0.75, brier=None, contradiction=False)
...  if check.crossed]
['ks_d']

With the default CUSUM rule, the KS alert comes once the window z scores (probit of the
p-value) have added up past the threshold, here on the third window at z = 6 (p ~ 1e-9):

>>> [policy.on_rules(window_end=float(end), ks_d=0.1, ks_p_value=1e-9, auc=None,
...                  auc_threshold=None) != [] for end in (60, 120, 180, 240)]
[False, False, True, False]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftline.clock import Clock, as_utc
from driftline.monitoring.rules import Cusum, Persistence, Rule, domain_z, p_z
from driftline.settings import AlertSettings, MonitorSettings
from driftline.stats import ErrorStreamDetector
from driftline.stats.feedback import FeedbackSummary
from driftline.topics import Alert, DriftReport, ModelRef


def contradicts(
    estimated_f1: float | None, feedback: FeedbackSummary, monitor: MonitorSettings
) -> bool:
    """Feedback F1 differs from the CBPE estimate beyond tolerance, on enough feedback.

    CBPE assumes the model stays calibrated; feedback is the check on that assumption.
    """
    realized = feedback.realized
    return bool(
        realized.n >= monitor.min_feedback
        and realized.f1 is not None
        and estimated_f1 is not None
        and abs(realized.f1 - estimated_f1) > monitor.contradiction_tolerance
    )


@dataclass(frozen=True)
class Check:
    metric: str
    value: float | None
    threshold: float | None
    crossed: bool


RULE_METRICS = ("ks_d", "mmd", "domain_auc")
"""The metrics `AlertSettings.rule` applies to (the others keep fixed levels)."""


class AlertPolicy:
    """The alerting state of one model version: which metrics are above their threshold, and
    the change detector on its error stream."""

    def __init__(
        self,
        model: ModelRef,
        config: AlertSettings,
        monitor: MonitorSettings,
        reference_f1: float | None,
        clock: Clock,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.detector_name = monitor.change_detector
        self.reference_f1 = reference_f1
        self.clock = clock
        self.firing: set[str] = set(state["firing"]) if state else set()
        saved = (state or {}).get("rules") or {}
        if saved.get("rule") != config.rule:  # none yet, or the rule was reconfigured
            saved = {}
        self.rules: dict[str, Rule] = {
            metric: rule
            for metric in RULE_METRICS
            if (rule := self._new_rule(saved.get(metric))) is not None
        }
        self.detector = (
            ErrorStreamDetector.from_state(state["detector"])
            if state
            else ErrorStreamDetector(monitor.change_detector)
        )

    def _new_rule(self, state: dict[str, Any] | None) -> Rule | None:
        cfg = self.config
        if cfg.rule == "persistence":
            return Persistence(cfg.persistence, cfg.alpha, state)
        if cfg.rule == "cusum":
            return Cusum(cfg.cusum_drift, cfg.cusum_threshold, state)
        return None

    def checks(
        self,
        *,
        ks_d: float | None,
        auc: float | None,
        feature_drift: bool | None,
        cbpe_f1: float | None,
        brier: float | None,
        contradiction: bool,
    ) -> Iterator[Check]:
        """Every alerting statistic, its threshold and whether it is above it."""
        cfg = self.config
        yield Check("ks_d", ks_d, cfg.ks_d, ks_d is not None and ks_d > cfg.ks_d)
        if auc is not None:  # a skipped classifier leaves the alert as it was
            yield Check(
                "domain_auc", auc, cfg.domain_auc, bool(feature_drift) and auc > cfg.domain_auc
            )
        ref_f1 = self.reference_f1
        drop = None if cbpe_f1 is None or ref_f1 is None else ref_f1 - cbpe_f1
        yield Check("cbpe_f1_drop", drop, cfg.f1_drop, drop is not None and drop > cfg.f1_drop)
        yield Check("brier", brier, cfg.brier, brier is not None and brier > cfg.brier)
        yield Check("contradiction", float(contradiction), None, contradiction)

    def on_report(self, r: DriftReport, mmd_p_value: float | None = None) -> list[Alert]:
        """Alerts for the statistics of `r` that crossed their threshold since the last report.

        `mmd_p_value` is the window's MMD permutation p-value (not in the report).
        """
        alerts = self.on_rules(
            window_end=r.window_end.timestamp(),
            ks_d=r.ks_d,
            ks_p_value=r.ks_p_value,
            mmd=r.mmd,
            mmd_p_value=mmd_p_value,
            auc=r.domain_auc,
            auc_threshold=r.domain_auc_threshold,
        )
        for check in self.checks(
            ks_d=r.ks_d,
            auc=r.domain_auc,
            feature_drift=r.feature_drift,
            cbpe_f1=r.estimated.f1,
            brier=r.feedback.brier,
            contradiction=r.contradiction,
        ):
            if check.metric in self.rules:
                continue
            if not check.crossed:
                self.firing.discard(check.metric)
            elif check.metric not in self.firing:
                self.firing.add(check.metric)
                assert check.value is not None
                text = f"{check.metric} {check.value:.4g}"
                alerts.append(
                    self._alert(check.metric, check.value, check.threshold, r.window_end, text)
                )
        return alerts

    def on_rules(
        self,
        *,
        window_end: float,
        ks_d: float | None,
        ks_p_value: float | None,
        mmd: float | None = None,
        mmd_p_value: float | None = None,
        auc: float | None,
        auc_threshold: float | None,
    ) -> list[Alert]:
        """Feed one window's null z scores to the rules; an alert where a rule starts firing."""
        alerts = []
        scores = {
            "ks_d": (ks_d, p_z(ks_p_value)),
            "mmd": (mmd, p_z(mmd_p_value)),
            "domain_auc": (auc, domain_z(auc, auc_threshold)),
        }
        for metric, rule in self.rules.items():
            value, z = scores[metric]
            if rule.update(z):
                assert value is not None and z is not None
                text = f"{metric} {value:.4g} (window z {z:.2f}): {rule.describe()}"
                alerts.append(self._alert(metric, value, None, as_utc(window_end), text))
        return alerts

    def on_error(self, error: float, window_end: float, identity: str) -> list[Alert]:
        """Feed one event's error to the detector; an alert on `window_end` if it changed."""
        if not self.detector.update(error):
            return []
        text = f"{self.detector_name} detected a change in the error stream"
        return [self._alert("error_change", error, None, as_utc(window_end), text, identity)]

    def _alert(
        self,
        metric: str,
        value: float,
        threshold: float | None,
        end: datetime,
        text: str,
        identity: str = "",
    ) -> Alert:
        m = self.model
        key = f"{m.key}/{metric}/{end.isoformat()}/{identity}"
        return Alert(
            alert_id=hashlib.sha256(key.encode()).hexdigest()[:32],
            model=m,
            metric=metric,
            value=value,
            threshold=threshold,
            window_end=end,
            message=f"{m.key}: {text}"
            + (f" crossed {threshold:g}" if threshold is not None else ""),
            created_at=as_utc(self.clock()),
        )

    def to_state(self) -> dict[str, Any]:
        rules = {metric: rule.to_state() for metric, rule in self.rules.items()}
        return {
            "firing": sorted(self.firing),
            "detector": self.detector.to_state(),
            "rules": {"rule": self.config.rule, **rules},
        }
