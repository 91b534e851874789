"""Detection delay and false-alarm rate of the alert rules, on windows the monitor computes.

    nice -n 19 .venv/bin/python -m bench.detectors [--streams 24] [--runs 10] [--seed 0]

A TF-IDF + logistic regression model is trained on in-domain tweets (positive vs negative);
its reference (probabilities, calibrator, 2000 feature rows) comes from held-out tweets, as at
training time. The remaining tweets, never used for training or the reference, are the
in-domain traffic. Out-of-domain traffic comes from two other text domains shipped in wheels:
neutral tweets (same medium, other content) and SMS messages (another medium).

Every text is featurised and scored once (the cheapest faithful path: the flow's `features`
step does the same once per event), then replayed as events, one per second of event time,
through `ModelWindow`: the monitor's own window code, statistics and domain classifier,
with windows of `WINDOW` events sliding by `SLIDE`. The resulting reports feed the rules of
`driftline.monitoring.rules` and the fixed levels of `AlertSettings` (what `AlertPolicy` does
with each report).

- In-domain: `--streams` streams, each a fresh seeded permutation of the in-domain pool, so a
  window never holds a text twice; every window counts (the first ones fill up). False alarms
  per 1,000 windows, with a Clopper-Pearson 95% interval (it treats alarms as independent;
  they are rare and a firing rule cannot alarm again until it resets).
- Shifts: `--runs` streams per (domain, share): `PRE` in-domain events, then each event is
  out-of-domain with probability share (10%, 30%, 100%) for `HORIZON` windows. Delay is counted
  from the change: a window ending `d` slides after it holds `d * SLIDE` events of the shifted
  traffic (`d` windows, `d * SLIDE` events). Median delay over the runs that alarmed, and how
  many did within the horizon.
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest
from tqdm import tqdm

from bench.tweet_model import tweet_model
from driftline.monitoring.reference import Reference
from driftline.monitoring.rows import encode_row
from driftline.monitoring.rules import Cusum, Persistence, domain_z, p_z
from driftline.monitoring.window import Event, ModelWindow, Output
from driftline.settings import AlertSettings, MonitorSettings
from driftline.topics import DriftReport, ModelRef
from models.datasets import neutral_tweets, sms_texts

WINDOW = 1000
"""Events per window (one event per second of event time)."""
SLIDE = 100
"""Events per slide: 10 overlapping windows hold each event."""
PRE = 2000
"""In-domain events before a shift."""
HORIZON = 30
"""Windows after a shift within which a detection counts."""
SHARES = (0.1, 0.3, 1.0)
TRAIN, REFERENCE = 6000, 2000
MODEL = ModelRef(name="bench", version="1")


@dataclass(frozen=True)
class Pool:
    """Texts of one domain, featurised and scored once."""

    name: str
    p: np.ndarray
    calibrated: np.ndarray
    rows: list[bytes]


@dataclass(frozen=True)
class Series:
    """Per window of one stream: end (events), KS D and p-value, MMD p-value, domain AUC and
    threshold (None where the classifier did not run), CBPE F1 drop."""

    ends: np.ndarray
    ks_p: list[float | None]
    ks_d: list[float | None]
    mmd_p: list[float | None]
    auc: list[float | None]
    auc_threshold: list[float | None]
    f1_drop: list[float | None]


RuleFactory = Callable[[], Callable[[Series, int], bool]]


def build(seed: int) -> tuple[Reference, Pool, dict[str, Pool]]:
    tm = tweet_model(seed, TRAIN, REFERENCE)
    vectorizer, model, calibrator = tm.vectorizer, tm.model, tm.calibrator

    def pool(name: str, pool_texts: list[str]) -> Pool:
        x = vectorizer.transform(pool_texts)
        p = model.predict_proba(x)[:, 1]
        rows = [encode_row(x[i]) for i in range(x.shape[0])]
        return Pool(name, p, np.clip(calibrator.predict(p), 0.0, 1.0), rows)

    in_domain = pool("tweets", tm.texts[tm.rest])
    others = {
        "neutral tweets": pool("neutral tweets", neutral_tweets()["text"].tolist()),
        "sms": pool("sms", sms_texts()["text"].tolist()),
    }
    return tm.reference, in_domain, others


def replay(reference: Reference, events: list[tuple[Pool, int]], domain_every: int) -> Series:
    """The reports of `ModelWindow` over the events, one per second of event time."""
    config = MonitorSettings(
        window_seconds=float(WINDOW),
        slide_seconds=float(SLIDE),
        lateness_seconds=0.0,
        idle_seconds=0.0,
        domain_every=domain_every,
    )
    window = ModelWindow(MODEL, reference, config, AlertSettings(), 0.5, clock=lambda: 0.0)
    reports: list[DriftReport] = []
    mmd_p: list[float | None] = []
    emit = window.emit

    def emit_with_p_value() -> Output:  # the MMD p-value of each emission, as the policy gets it
        out = emit()
        mmd_p.append(window.mmd.p_value())
        return out

    window.emit = emit_with_p_value  # type: ignore[method-assign]
    for t, (pool, i) in enumerate(events):
        p = float(pool.p[i])
        event = Event(str(t), float(t), p, float(pool.calibrated[i]), int(p >= 0.5), pool.rows[i])
        reports += window.add_result(event).reports
    ref_f1 = window.reference_f1 or 0.0
    return Series(
        ends=np.array([r.window_end.timestamp() for r in reports]),
        ks_p=[r.ks_p_value for r in reports],
        ks_d=[r.ks_d for r in reports],
        mmd_p=mmd_p,
        auc=[r.domain_auc for r in reports],
        auc_threshold=[r.domain_auc_threshold for r in reports],
        f1_drop=[None if r.estimated.f1 is None else ref_f1 - r.estimated.f1 for r in reports],
    )


# ---- rules: each a factory of a fresh per-stream state, fed one window at a time -------------


def fixed(metric: str) -> RuleFactory:
    """`AlertPolicy`'s fixed levels (AlertSettings defaults), alarm on the crossing."""
    cfg = AlertSettings()

    def make() -> Callable[[Series, int], bool]:
        firing = False

        def update(s: Series, i: int) -> bool:
            nonlocal firing
            if metric == "ks_d":
                above = (s.ks_d[i] or 0.0) > cfg.ks_d
            elif metric == "cbpe_f1_drop":
                above = (s.f1_drop[i] or 0.0) > cfg.f1_drop
            else:
                auc, thr = s.auc[i], s.auc_threshold[i]
                if auc is None or thr is None:
                    return False
                above = auc > thr and auc > cfg.domain_auc
            alarm = above and not firing
            firing = above
            return alarm

        return update

    return make


def z_of(metric: str, s: Series, i: int) -> float | None:
    if metric == "ks":
        return p_z(s.ks_p[i])
    if metric == "mmd":
        return p_z(s.mmd_p[i])
    return domain_z(s.auc[i], s.auc_threshold[i])


def persistence(metric: str, k: int, alpha: float) -> RuleFactory:
    def make() -> Callable[[Series, int], bool]:
        rule = Persistence(k, alpha)
        return lambda s, i: rule.update(z_of(metric, s, i))

    return make


def cusum(metric: str, drift: float, threshold: float) -> RuleFactory:
    def make() -> Callable[[Series, int], bool]:
        rule = Cusum(drift, threshold)
        return lambda s, i: rule.update(z_of(metric, s, i))

    return make


def either(*rules: RuleFactory) -> RuleFactory:
    """Several rules side by side, as the policy runs them: an alarm when any alarms."""

    def make() -> Callable[[Series, int], bool]:
        updates = [rule() for rule in rules]
        return lambda s, i: any([update(s, i) for update in updates])  # every rule sees i

    return make


RULES: dict[str, RuleFactory] = {
    "fixed: KS D > 0.2": fixed("ks_d"),
    "fixed: CBPE F1 drop > 0.1": fixed("cbpe_f1_drop"),
    "fixed: domain AUC > 0.6 and > null 95%": fixed("domain_auc"),
    "domain AUC: 1 window at alpha 0.05 (feature_drift)": persistence("domain", 1, 0.05),
    "domain AUC: CUSUM drift 1, h 8": cusum("domain", 1.0, 8.0),
    "KS: 1 window at alpha 0.01": persistence("ks", 1, 0.01),
    "KS: 3 in a row at alpha 0.01": persistence("ks", 3, 0.01),
    "KS: CUSUM drift 1, h 8": cusum("ks", 1.0, 8.0),
    "KS: CUSUM drift 1, h 12": cusum("ks", 1.0, 12.0),
    "KS: CUSUM drift 2, h 12": cusum("ks", 2.0, 12.0),
    "MMD: 1 window at alpha 0.05 (mmd_drift)": persistence("mmd", 1, 0.05),
    "MMD: 3 in a row at alpha 0.01": persistence("mmd", 3, 0.01),
    "MMD: 5 in a row at alpha 0.01": persistence("mmd", 5, 0.01),
    "MMD: CUSUM drift 1, h 6": cusum("mmd", 1.0, 6.0),
    "MMD: CUSUM drift 1, h 10": cusum("mmd", 1.0, 10.0),
    "MMD: CUSUM drift 1, h 8": cusum("mmd", 1.0, 8.0),
    "MMD: CUSUM drift 1.5, h 8": cusum("mmd", 1.5, 8.0),
    "policy, KS or MMD: 3 in a row at alpha 0.01": either(
        persistence("ks", 3, 0.01), persistence("mmd", 3, 0.01)
    ),
    "policy, KS or MMD: 5 in a row at alpha 0.01": either(
        persistence("ks", 5, 0.01), persistence("mmd", 5, 0.01)
    ),
    "policy, KS or MMD: CUSUM drift 1, h 8": either(cusum("ks", 1.0, 8.0), cusum("mmd", 1.0, 8.0)),
    "policy, KS or MMD: CUSUM drift 1, h 10": either(
        cusum("ks", 1.0, 10.0), cusum("mmd", 1.0, 10.0)
    ),
    "policy, KS or MMD: CUSUM drift 1, h 12": either(
        cusum("ks", 1.0, 12.0), cusum("mmd", 1.0, 12.0)
    ),
}


def alarms(series: Series, make: RuleFactory) -> list[int]:
    update = make()
    return [i for i in range(len(series.ends)) if update(series, i)]


def stream_events(rng: np.random.Generator, home: Pool, n: int) -> Iterator[tuple[Pool, int]]:
    for i in rng.permutation(len(home.p))[:n]:
        yield home, int(i)


def shifted(
    rng: np.random.Generator, home: Pool, other: Pool, share: float
) -> list[tuple[Pool, int]]:
    """PRE in-domain events, then HORIZON windows' worth where each is `other` w.p. share."""
    post = HORIZON * SLIDE
    mine, theirs = iter(rng.permutation(len(home.p))), iter(rng.permutation(len(other.p)))
    events = [(home, int(next(mine))) for _ in range(PRE)]
    for shift in rng.uniform(size=post) < share:
        events.append((other, int(next(theirs))) if shift else (home, int(next(mine))))
    return events


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return ci.low, ci.high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=30, help="in-domain streams")
    parser.add_argument("--runs", type=int, default=8, help="streams per domain and share")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--domain-every",
        type=int,
        default=0,
        help="run the domain classifier every k-th window (0: never, the default: one fit "
        "costs 1-5 s on this machine, too slow for thousands of windows)",
    )
    parser.add_argument("--cache", type=Path, help="keep the replayed windows in this file")
    args = parser.parse_args()

    if args.cache and args.cache.exists():
        null, shifts, pool_size = pickle.loads(args.cache.read_bytes())
    else:
        null, shifts, pool_size = simulate(args.streams, args.runs, args.seed, args.domain_every)
        if args.cache:
            args.cache.write_bytes(pickle.dumps((null, shifts, pool_size)))
    table(null, shifts, pool_size, args.seed)


def simulate(
    streams: int, runs: int, seed: int, domain_every: int
) -> tuple[list[Series], dict[tuple[str, float], list[Series]], int]:
    reference, home, others = build(seed)
    every = domain_every or 10**9
    rng = np.random.default_rng(seed)
    null = [
        replay(reference, list(stream_events(rng, home, len(home.p))), every)
        for _ in tqdm(range(streams), desc="in-domain streams")
    ]
    cases = [(name, share) for name in others for share in SHARES]
    shifts: dict[tuple[str, float], list[Series]] = {case: [] for case in cases}
    with tqdm(total=len(cases) * runs, desc="shifted streams") as bar:
        for _ in range(runs):
            for name, share in cases:
                shifts[name, share].append(
                    replay(reference, shifted(rng, home, others[name], share), every)
                )
                bar.update()
    return null, shifts, len(home.p)


def table(
    null: list[Series], shifts: dict[tuple[str, float], list[Series]], pool_size: int, seed: int
) -> None:
    cases = list(shifts)
    runs = len(shifts[cases[0]])
    windows = sum(len(s.ends) for s in null)
    print(
        f"in-domain: {len(null)} streams of {pool_size:,} tweets (none used for training "
        f"or the reference), {windows:,} windows of {WINDOW} events sliding by {SLIDE}; "
        f"shifts: {runs} runs per domain and share, change after {PRE} in-domain events, "
        f"horizon {HORIZON} windows; TF-IDF + logistic regression, reference "
        f"{REFERENCE} held-out tweets, seed {seed}\n"
    )
    head = "| rule | false alarms / 1,000 in-domain windows (95% CI) |"
    sep = "|---|---|"
    for name, share in cases:
        head += f" {name} {share:.0%}: median delay, windows (max) / events (detected) |"
        sep += "---|"
    print(head)
    print(sep)
    for label, make in RULES.items():
        if "domain AUC" in label and sum(a is not None for s in null for a in s.auc) < (
            windows / 2
        ):
            continue  # the domain classifier ran on the first window of a stream only
        k = sum(len(alarms(s, make)) for s in null)
        low, high = clopper_pearson(k, windows)
        line = f"| {label} | {1000 * k / windows:.2f} ({1000 * low:.2f}-{1000 * high:.2f}) |"
        for case in cases:
            delays = []
            for s in shifts[case]:
                after = [round((s.ends[i] - PRE) / SLIDE) for i in alarms(s, make)]
                first = next((d for d in after if 0 < d <= HORIZON), None)
                if first is not None:
                    delays.append(first)
            if delays:
                d = float(np.median(delays))
                line += (
                    f" {d:g} (max {max(delays)}) / {d * SLIDE:,.0f} "
                    f"({len(delays)}/{len(shifts[case])}) |"
                )
            else:
                line += f" - (0/{len(shifts[case])}) |"
        print(line)


if __name__ == "__main__":
    main()
