"""The monitor flow's steps without Kafka: features once per event, keyed window logic, resume."""

from __future__ import annotations

import dataclasses
import pickle
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from driftline.monitoring.reference import Reference
from driftline.monitoring.share import Tick
from driftline.monitoring.window import Event
from driftline.topics import DeadLetter, DriftReport, InferenceResult, Labeled, ModelRef
from flows import journal
from flows.monitor import Enricher, ShareLogic, WindowLogic, monitored
from flows.wiring import Parsed
from tests.unit.monitor_support import flow_settings

MODEL = ModelRef(name="m", version="1")
REF = Reference(np.linspace(0.05, 0.95, 50), np.arange(50) % 2, np.eye(50, 3))


def result(t: float, p: float, model: ModelRef = MODEL, **extra: object) -> Parsed[InferenceResult]:
    at = datetime.fromtimestamp(t, UTC)
    message = InferenceResult(
        inference_id=uuid.uuid4(),
        created_at=at,
        data=f"text {t}",
        model=model,
        prediction=p,
        label=int(p >= 0.5),
        scored_at=at,
        **extra,
    )
    return Parsed(message, "inference.results", 0, int(t))


def labeled(t: float) -> Labeled:
    return Labeled(
        inference_id=uuid.uuid4(),
        created_at=datetime.fromtimestamp(t, UTC),
        model=MODEL,
        prediction=0.5,
        label=1,
        feedback=[1.0],
        feedback_mean=1.0,
        updated_at=datetime.fromtimestamp(t + 2, UTC),
    )


def ones_enricher() -> Enricher:
    """Features without a model: a row of ones per text, and REF for every model."""
    return Enricher(lambda n, v: REF, lambda n, v, texts: np.ones((len(texts), 3)))


def test_probes_and_errors_are_not_monitored() -> None:
    assert monitored(result(1, 0.5))
    assert not monitored(result(1, 0.5, probe=True))
    assert not monitored(result(1, 0.5, error="boom"))


def test_features_are_computed_once_per_batch_and_failures_become_dead_letters() -> None:
    calls: list[list[str]] = []

    def featurize(name: str, version: str, texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.ones((len(texts), 3))

    enrich = Enricher(lambda name, version: REF, featurize)
    batch = [result(t, 0.7) for t in (1, 2, 3)]
    events = enrich(batch)
    assert calls == [["text 1", "text 2", "text 3"]]
    assert [e.calibrated for e in events] == [0.7] * 3

    def missing(name: str, version: str) -> Reference:
        raise LookupError("no reference for m/1")

    [letter] = Enricher(missing, featurize)([result(4, 0.2)])
    assert isinstance(letter, DeadLetter) and "no reference for m/1" in letter.reason


def test_window_logic_emits_dead_letters_for_late_results_and_resumes() -> None:
    config = flow_settings(length=10, slide=5, lateness=1)
    enrich = ones_enricher()
    logic = WindowLogic(lambda n, v: REF, config, None)
    early = Parsed(labeled(6), "inference.labeled", 0, 0)
    assert logic.on_batch([early]) == ([], WindowLogic.DISCARD)  # before any result: no window
    # One micro-batch out of event-time order (partitions interleaved): sorted before use.
    scored = [result(t, p) for t, p in [(7, 0.4), (1, 0.9), (3, 0.6), (2, 0.2)]]
    batch = enrich(scored)
    assert all(isinstance(e, Event) for e in batch)
    outputs, retain = logic.on_batch(batch)
    assert retain == WindowLogic.RETAIN
    assert all(e.origin is None for e in batch)  # accepted: the window keeps no message
    [report] = [o for o in outputs if isinstance(o, DriftReport)]
    assert (report.window_end.timestamp(), report.n) == (5.0, 3)
    assert sorted(o.time for o in outputs if isinstance(o, Tick)) == [1, 2, 3, 7]
    assert logic.on_batch(enrich(scored[:1]))[0] == []  # re-delivered: no tick, no report

    resumed = WindowLogic(lambda n, v: REF, config, logic.snapshot())
    [late] = enrich([result(2.5, 0.5)])
    [letter] = resumed.on_batch([late])[0]
    assert letter.message.reason.startswith("late: event time 2.500s")
    assert resumed.on_batch([Parsed(labeled(6), "inference.labeled", 0, 0)])[0] == []


def test_share_matches_a_brute_force_count_over_all_models() -> None:
    """Three models, results out of order within the lateness, re-deliveries and late ones:
    each report's share is its n over every model's accepted results in the same window."""
    config = flow_settings(length=20, slide=5, lateness=3)
    rng = np.random.default_rng(7)
    models = [ModelRef(name="m", version=v) for v in ("1", "2", "3")]
    enrich = ones_enricher()
    windows = {m: WindowLogic(lambda n, v: REF, config, None) for m in models}
    share = ShareLogic(config, None)
    times = np.sort(rng.uniform(0, 120, 600)) + rng.uniform(0, 2.5, 600)  # disorder < lateness
    stream = [
        result(t, rng.uniform(), model=models[rng.choice(3, p=[0.5, 0.3, 0.2])]) for t in times
    ]
    stream += [stream[i] for i in rng.choice(len(stream), 60)]  # re-delivered
    stream.insert(400, result(10.0, 0.5, model=models[0]))  # far too late: rejected
    rng.shuffle(stream[:50])  # disorder within the first batches only stays under the lateness
    accepted: dict[str, float] = {}
    published: list[DriftReport] = []
    for start in range(0, len(stream), 25):
        to_share: list[Tick | DriftReport] = []
        for model in models:
            batch = [p for p in stream[start : start + 25] if p.message.model == model]
            outputs, _ = windows[model].on_batch(enrich(batch))
            to_share += [o for o in outputs if isinstance(o, Tick | DriftReport)]
        for tick in (o for o in to_share if isinstance(o, Tick)):
            accepted[f"{tick.model}@{tick.time}"] = tick.time
        outputs, _ = share.on_batch(to_share)
        published += [o.message for o in outputs]
        share = ShareLogic(config, share.snapshot())  # resume from every snapshot
    assert len(accepted) == 600 and len(published) > 50
    for report in published:
        start, end = report.window_start.timestamp(), report.window_end.timestamp()
        everyone = sum(start <= t < end for t in accepted.values())
        assert report.share == pytest.approx(report.n / everyone, abs=1e-12), report


class Clock:
    """Wall time the test sets by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_idle_models_get_their_last_windows_emitted_by_the_wall_clock() -> None:
    """Traffic stops: after `idle` seconds of wall time the watermark moves on at wall-clock
    pace, Bytewax is asked to wake the logic then, and the open window is reported and shared."""
    config = flow_settings(length=10, slide=5, lateness=1, idle_seconds=30)
    clock = Clock(1000.0)
    enrich = ones_enricher()
    logic = WindowLogic(lambda n, v: REF, config, None, clock=clock)
    share = ShareLogic(config, None, clock=clock)
    outputs, _ = logic.on_batch(enrich([result(t, 0.6) for t in (1, 2, 5.5)]))
    assert not [o for o in outputs if isinstance(o, DriftReport)]  # watermark 4.5: none closed
    assert share.on_batch(outputs)[0] == []
    # The window ending at 5 closes once the watermark reaches 5: 30 s idle, then 0.5 s more.
    assert logic.notify_at() == datetime.fromtimestamp(1030.5, UTC)
    clock.now = 1030.0
    assert logic.on_notify()[0] == []
    clock.now = 1030.5
    [report] = [o for o in logic.on_notify()[0] if isinstance(o, DriftReport)]
    assert (report.window_end.timestamp(), report.n) == (5.0, 2)
    # The share step has seen the same traffic, so its own idle watermark releases it at once.
    [published] = share.on_batch([report])[0]
    assert published.message.n == 2 and published.message.share == 1.0
    assert share.notify_at() is None  # nothing left waiting
    # Then the window ending at 10, five seconds of wall time later; a result older than the
    # moved watermark is late now.
    assert logic.notify_at() == datetime.fromtimestamp(1035.5, UTC)
    clock.now = 1035.5
    [later] = [o for o in logic.on_notify()[0] if isinstance(o, DriftReport)]
    assert (later.window_end.timestamp(), later.n) == (10.0, 3)
    [late] = logic.on_batch(enrich([result(9.5, 0.5)]))[0]
    assert late.message.reason.startswith("late: event time 9.500s")


def test_the_share_step_waits_for_its_own_watermark_then_wakes_itself() -> None:
    config = flow_settings(length=10, slide=5, lateness=1, idle_seconds=30)
    clock = Clock(1000.0)
    share = ShareLogic(config, None, clock=clock)
    enrich = ones_enricher()
    logic = WindowLogic(lambda n, v: REF, config, None, clock=clock)
    ticks = [o for o in logic.on_batch(enrich([result(t, 0.6) for t in (1, 2, 5.5)]))[0]]
    clock.now = 1030.5
    [report] = [o for o in logic.on_notify()[0] if isinstance(o, DriftReport)]
    clock.now = 1010.0  # the report reaches the share step before its idle time is up
    assert share.on_batch([*ticks, report])[0] == []
    assert share.notify_at() == datetime.fromtimestamp(1040.5, UTC)  # idleness from 1010
    clock.now = 1040.5
    [published] = share.on_notify()[0]
    assert published.message.share == 1.0


def test_a_restart_does_not_count_downtime_as_idleness() -> None:
    config = flow_settings(length=10, slide=5, lateness=1, idle_seconds=30)
    clock = Clock(1000.0)
    enrich = ones_enricher()
    logic = WindowLogic(lambda n, v: REF, config, None, clock=clock)
    logic.on_batch(enrich([result(t, 0.6) for t in (1, 2, 5.5)]))
    clock.now = 5000.0  # down for an hour; the backlog arrives after the resume
    resumed = WindowLogic(lambda n, v: REF, config, logic.snapshot(), clock=clock)
    assert resumed.notify_at() == datetime.fromtimestamp(5060.5, UTC)  # grace: one idle period
    outputs, _ = resumed.on_batch(enrich([result(7, 0.4)]))  # not late: counted
    assert [o.time for o in outputs if isinstance(o, Tick)] == [7]
    share = ShareLogic(config, ShareLogic(config, None, clock=Clock(1000.0)).snapshot(), clock)
    assert share.share.event_clock.seen_at == 5030.0


def feedback_on(scored: Parsed[InferenceResult], score: float) -> Parsed[Labeled]:
    m = scored.message
    message = Labeled(
        inference_id=m.inference_id,
        created_at=m.created_at,
        model=m.model,
        prediction=m.prediction,
        label=m.label,
        feedback=[score],
        feedback_mean=score,
        updated_at=m.created_at,
    )
    return Parsed(message, "inference.labeled", 0, 0)


def copied(batch: list[Parsed | Event]) -> list[Parsed | Event]:
    """Events are the window's own (feedback changes them): one copy per window."""
    return [dataclasses.replace(v) if isinstance(v, Event) else v for v in batch]


def test_journaled_windows_resume_like_windows_snapshotted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a recovery directory the window's events go to a journal, not into each
    snapshot. Resumed from either of the last two snapshots after the journal went on (a crash
    before Bytewax stored the newest), and across rewrites, a window goes on exactly as one
    resumed from a snapshot that holds its events."""
    monkeypatch.setattr(journal, "MIN_REWRITE", 30)
    monkeypatch.setattr(journal, "REWRITE_EVERY", 2)
    config = flow_settings(length=4, slide=2, lateness=1)
    clock, enrich, rng = Clock(1000.0), ones_enricher(), np.random.default_rng(3)
    batches: list[list[Parsed | Event]] = []
    scored: list[Parsed[InferenceResult]] = []
    for second in range(40):  # feedback a second later, on results already in the window
        feedback = [feedback_on(s, float(rng.integers(2))) for s in scored[:3]]
        scored = [result(second + i / 8, float(rng.uniform())) for i in range(8)]
        batches.append([*enrich(scored), *feedback])

    def logic(resume: dict | None, journals: Path | None = None) -> WindowLogic:
        return WindowLogic(lambda n, v: REF, config, resume, clock=clock, journals=journals)

    for back in (1, 2):  # resumed from the newest snapshot, or the one before
        folder = tmp_path / str(back)
        folder.mkdir()
        journaled, whole = logic(None, folder), logic(None)
        snapshots = []
        for batch in batches[:30]:
            assert journaled.on_batch(copied(batch)) == whole.on_batch(copied(batch))
            snapshots.append((pickle.loads(pickle.dumps(journaled.snapshot())), whole.snapshot()))
        assert "window" not in snapshots[-1][0] and "window" in snapshots[-1][1]
        assert snapshots[-1][0]["journal"][0] >= 3  # rewritten several times
        assert len(list(folder.glob("*.journal"))) == 2  # this generation and the one before

        state, state_whole = snapshots[-back]
        resumed, expected = logic(state, folder), logic(state_whole)
        for batch in batches[30 - back + 1 :]:
            assert resumed.on_batch(copied(batch)) == expected.on_batch(copied(batch))
            state = pickle.loads(pickle.dumps(resumed.snapshot()))
        again = logic(state, folder)
        assert again.window and expected.window
        assert sorted(again.window.live_events()) == sorted(expected.window.live_events())
