"""Benchmark of the monitor's window logic on real tweets with 10k-event windows.

    .venv/bin/python -m bench.monitor_bench          # or: make bench

Prints, from one run:
1. events/s that `ModelWindow` sustains with a full 10k-event window (1 h window, 1 min slide,
   ~2.8 events/s of event time, so each slide moves ~170 events in and out; one feedback
   message for every other event), with the domain classifier on every emission and with it
   off (`domain_every` large, as `DRIFTLINE_MONITOR_DOMAIN_EVERY` sets it);
2. the cost of mapping an event to its random Fourier features for the MMD (once per event,
   in one batch per emission);
3. the cost of one window emission (incremental KS/CBPE/feedback/MMD, with and without the
   domain classifier on at most `monitor_domain_rows` cached feature rows per side) against
   recomputing the same statistics from scratch over the same 10k events (scipy `ks_2samp`,
   numpy CBPE, sklearn Brier, the MMD by mapping every event of the window again and
   averaging, a fresh TF-IDF vectorising of the window and reference texts and a domain
   classifier on all rows), as ratios; and the exact quadratic-time MMD as a second baseline;
4. the size and time of the window's state pickled whole (what a snapshot holds without a
   recovery directory; the flow journals the events instead: `bench.monitor_snapshot`), and
   the cost of mapping the whole window again after a restore.

Feature rows are computed upstream once per event (the flow's `features` step); that cost is
printed too, per event, but is not part of the window logic.
"""

from __future__ import annotations

import pickle
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from scipy.stats import ks_2samp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import brier_score_loss

from bench.tweet_model import tweet_model
from driftline.monitoring.rows import decode_rows, encode_row
from driftline.monitoring.window import Event, ModelWindow
from driftline.settings import AlertSettings, MonitorSettings
from driftline.stats import domain_auc
from driftline.stats.mmd import gaussian_mmd2
from driftline.topics import Labeled, ModelRef

WINDOW = 10_000
SECONDS_PER_EVENT = 3600 / WINDOW
MODEL = ModelRef(name="bench", version="1")


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median wall seconds of `fn`."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    tm = tweet_model(seed=0, train=3000, reference=2000)
    texts, y, vectorizer, model = tm.texts, tm.labels, tm.vectorizer, tm.model
    train, ref, stream = slice(0, 3000), slice(3000, 5000), tm.rest
    ref_x, ref_p, calibrator, reference = (
        tm.reference_x,
        tm.reference_p,
        tm.calibrator,
        tm.reference,
    )
    started = time.perf_counter()
    mmd = reference.feature_mmd  # once per model at load: bandwidth, map, null levels
    mmd_fit = time.perf_counter() - started

    stream_texts, stream_y = texts[stream], y[stream]
    started = time.perf_counter()
    stream_x = vectorizer.transform(stream_texts)
    featurize_us = (time.perf_counter() - started) / len(stream_texts) * 1e6
    stream_p = model.predict_proba(stream_x)[:, 1]
    calibrated = calibrator.predict(stream_p)
    events = [
        Event(
            str(uuid.UUID(int=i + 1)),
            i * SECONDS_PER_EVENT,
            float(stream_p[i]),
            float(calibrated[i]),
            int(stream_p[i] >= 0.5),
            encode_row(stream_x[i]),
        )
        for i in range(len(stream_texts))
    ]
    feedback = {
        i: Labeled(
            inference_id=uuid.UUID(events[i].inference_id),
            created_at=datetime.fromtimestamp(events[i].time, UTC),
            model=MODEL,
            prediction=events[i].p,
            label=events[i].label,
            feedback=[float(stream_y[i])],
            feedback_mean=float(stream_y[i]),
            updated_at=datetime.fromtimestamp(events[i].time, UTC),
        )
        for i in range(0, len(events), 2)
    }

    def run(domain_every: int) -> tuple[float, ModelWindow, int]:
        config = MonitorSettings(
            window_seconds=3600.0,
            slide_seconds=60.0,
            lateness_seconds=0.0,
            domain_every=domain_every,
        )
        model = ModelRef(name="bench", version="1")
        window = ModelWindow(model, reference, config, AlertSettings(), 0.5)
        for i in range(WINDOW):  # fill the window first
            window.add_result(events[i])
        elapsed, emitted = 0.0, 0
        for i in range(WINDOW, len(events)):
            started = time.perf_counter()
            emitted += len(window.add_result(events[i]).reports)
            if i in feedback:
                window.add_labeled(feedback[i])
            elapsed += time.perf_counter() - started
        return (len(events) - WINDOW) / elapsed, window, emitted

    with_domain, window, emitted = run(domain_every=1)
    without_domain, no_domain, _ = run(domain_every=10**9)
    n = len(window.window)

    # One emission of the full window: incremental vs from scratch, same events. The first
    # emit maps the events that entered since the run's last emission; the timed ones do not.
    window.emit(), no_domain.emit()
    emission = timed(window.emit)
    emission_no_domain = timed(no_domain.emit)
    in_window = sorted(window.window.values(), key=lambda e: e.time)
    first = round(in_window[0].time / SECONDS_PER_EVENT)
    idx = np.arange(first, first + n)
    window_texts = [stream_texts[i] for i in idx]
    window_rows = [events[i].features for i in idx]
    with_fb = np.array([i for i in idx if i in feedback])

    # The MMD map per event, in batches of one slide's events as the window maps them.
    slide = round(60 / SECONDS_PER_EVENT)
    started = time.perf_counter()
    for a in range(0, n - slide + 1, slide):
        mmd.empty().update(mmd.features(decode_rows(window_rows[a : a + slide], ref_x.shape[1])))
    map_us = (time.perf_counter() - started) / (n - n % slide) * 1e6

    def mmd_from_scratch() -> float:
        z = mmd.features(decode_rows(window_rows, ref_x.shape[1]))
        diff = z.mean(axis=0, dtype=np.float64) - mmd.reference_mean
        return float(diff @ diff)

    def exact_mmd() -> float:
        return gaussian_mmd2(ref_x, decode_rows(window_rows, ref_x.shape[1]), mmd.sigma)

    def statistics_from_scratch() -> None:
        p = stream_p[idx]
        ks_2samp(ref_p, p)
        cal, pred = calibrator.predict(p), p >= 0.5
        tp, fp = cal[pred].sum(), (1 - cal[pred]).sum()
        fn = cal[~pred].sum()
        _ = 2 * tp / (2 * tp + fp + fn)
        brier_score_loss(stream_y[with_fb], stream_p[with_fb])

    def domain_from_scratch() -> None:
        fresh = TfidfVectorizer().fit(texts[train])  # what a batch job does per run
        domain_auc(fresh.transform(texts[ref]), fresh.transform(window_texts))

    accumulators = timed(window.ks.d) + timed(window.cbpe.estimate) + timed(window.feedback.value)
    mmd_value = timed(lambda: (window.mmd.value(), window.mmd.threshold()))
    scratch_stats = timed(statistics_from_scratch)
    scratch_mmd = timed(mmd_from_scratch)
    scratch_exact = timed(exact_mmd, repeat=1)
    scratch_domain = timed(domain_from_scratch, repeat=3)
    scratch = scratch_stats + scratch_mmd + scratch_domain
    scratch_no_domain = scratch_stats + scratch_mmd

    def restore() -> None:
        state = no_domain.to_state()
        ModelWindow.from_state(state, reference, no_domain.config, AlertSettings(), 0.5).emit()

    snapshot = timed(lambda: pickle.dumps(window.to_state()))
    size = len(pickle.dumps(window.to_state()))
    columns = ref_x.shape[1]
    ms, us = 1e3, 1e6
    report = no_domain.emit().reports[0]
    lines = [
        f"window: {n} events (1 h, 1 min slide), reference {len(ref_p)} held-out tweets",
        f"emissions during the run: {emitted}",
        f"events/s, domain classifier every emission: {with_domain:,.0f}",
        f"events/s, domain classifier off (DOMAIN_EVERY large): {without_domain:,.0f}",
        f"features upstream (TF-IDF, batched): {featurize_us:.1f} us/event, once per event",
        f"MMD fit at load: {mmd_fit:.2f} s (sigma {mmd.sigma:.3f}, D {mmd.dim}, W {columns:,} x "
        f"{mmd.dim} float32 = {columns * mmd.dim * 4 / 1e6:.0f} MB, 1000 reference splits)",
        f"MMD map (decode + random Fourier features + update): {map_us:.1f} us/event, "
        f"once per event, in batches of {slide}",
        f"one emission, incremental, domain classifier included: {emission * ms:.1f} ms",
        f"one emission, incremental, domain classifier off: {emission_no_domain * us:.0f} us "
        f"(KS + CBPE + feedback accumulators {accumulators * us:.0f} us; "
        f"MMD value + threshold {mmd_value * us:.0f} us)",
        f"same statistics from scratch: {scratch * ms:.1f} ms "
        f"(KS + CBPE + Brier {scratch_stats * ms:.2f} ms; "
        f"MMD by mapping the window again {scratch_mmd * ms:.1f} ms; "
        f"vectorise + domain classifier {scratch_domain * ms:.0f} ms)",
        f"exact quadratic-time MMD on the same window: {scratch_exact:.2f} s",
        f"MMD^2 of this window: incremental {report.mmd:.6f}, from scratch "
        f"{mmd_from_scratch():.6f}, exact {exact_mmd():.6f}; null level "
        f"{report.mmd_threshold:.6f} (drift: {report.mmd_drift})",
        f"the window's state pickled whole: {size / 1e6:.1f} MB in {snapshot * ms:.0f} ms; "
        f"restore + first emission (maps the window again): {timed(restore) * ms:.0f} ms",
        f"ratio from scratch / incremental, domain classifier every emission: "
        f"{scratch / emission:.1f}x",
        f"ratio from scratch / incremental, every statistic with feature drift by the MMD "
        f"(domain classifier on a slower cadence): {scratch_no_domain / emission_no_domain:.0f}x "
        f"(against the exact MMD: {(scratch_stats + scratch_exact) / emission_no_domain:,.0f}x; "
        f"accumulators alone: {scratch_stats / accumulators:.0f}x)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
