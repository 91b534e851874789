"""Retrain a model on the lake at one snapshot plus feedback-labelled inferences, register it
as a challenger with its lineage, and start it as a shadow arm: what `driftline retrain` does
for each `RetrainRequest`.

The rows are read `AT (VERSION => snapshot)`, the lake's current snapshot when the request is
handled, so the run names exactly the data it saw: the training set (`sentiment_train`, sampled
to `DRIFTLINE_RETRAIN_SAMPLE` rows) and every answered inference with at least
`DRIFTLINE_RETRAIN_MIN_FEEDBACK` feedback scores, labelled by their mean
(`driftline.monitoring.retraining.feedback_label`), added to the train split (never to the test
split, so test metrics stay comparable; texts also in the test split are left out).

A request is done once its run carries `driftline.retrain.done`: handling it again registers
nothing (a crash before that retrains, or only starts the arm if the version exists).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

import lakehouse
from driftline.ab import Arm, Experiment
from driftline.monitoring.retraining import feedback_label
from driftline.settings import Settings
from driftline.tables import FEEDBACK, INFERENCES
from driftline.topics import RetrainRequest
from models import data, experiments, registry, train

log = logging.getLogger(__name__)

TAG_ALERT = "driftline.trigger.alert_id"
TAG_METRIC = "driftline.trigger.metric"
TAG_SNAPSHOT = "driftline.lake.snapshot_id"
TAG_REQUEST = "driftline.retrain.request_id"
TAG_FEEDBACK_ROWS = "driftline.retrain.feedback_rows"
TAG_DONE = "driftline.retrain.done"
TAG_MODEL = "driftline.retrain.model"
TAG_WINDOW_END = "driftline.trigger.window_end"

FEEDBACK_QUERY = f"""
    SELECT i.data AS text, list(f.feedback ORDER BY f.created_at, f.feedback_id) AS scores
    FROM (FROM lake.{INFERENCES.name} AT (VERSION => {{snapshot}})) i
    JOIN (FROM lake.{FEEDBACK.name} AT (VERSION => {{snapshot}})) f USING (inference_id)
    WHERE i.shadow_of IS NULL AND i.prediction IS NOT NULL
    GROUP BY i.inference_id, i.data
    ORDER BY i.inference_id
"""
"""Answered inferences with their feedback scores, as of one snapshot."""


@dataclass(frozen=True)
class Retrained:
    name: str
    version: str
    run_id: str
    snapshot_id: int
    feedback_rows: int
    experiments: tuple[str, ...]
    """Experiments the version now shadows in."""


def read_at(
    settings: Settings, min_feedback: int, sample: int | None, seed: int = 42
) -> tuple[data.TrainingData, int]:
    """The training rows at the lake's current snapshot, with the feedback-labelled inferences
    added to the train split; and how many of those were added."""
    con = lakehouse.connect(settings.lake, read_only=True)
    try:
        (snapshot,) = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone() or (
            0,
        )
        at = f"AT (VERSION => {snapshot})"
        frame = con.execute(data.TRAINING_QUERY.format(at=at)).df()
        scored = con.execute(FEEDBACK_QUERY.format(snapshot=snapshot)).fetchall()
    finally:
        con.close()
    if frame.empty:
        raise RuntimeError("no training set in the lake: run `driftline data load`")
    frame = data.sampled(frame, sample, seed)
    labelled = feedback_rows(scored, min_feedback, exclude=set(frame["text"]))
    labelled["row_id"] = frame["row_id"].max() + 1 + labelled.index.to_numpy()
    labelled["fold"] = labelled.index.to_numpy() % data.FOLDS
    combined = pd.concat([frame, labelled[list(frame.columns)]], ignore_index=True)
    combined["label"] = combined["label"].astype(frame["label"].dtype)
    return data.TrainingData(combined, snapshot), len(labelled)


def feedback_rows(
    scored: list[tuple[str, list[float]]], min_feedback: int, exclude: set[str]
) -> pd.DataFrame:
    """Train rows (`text`, `label`, `split`) from (text, feedback scores) pairs: one per text
    not in `exclude`, the first labelled inference of each text."""
    rows = {}
    for text, scores in scored:
        label = feedback_label(scores, min_feedback)
        if label is not None and text not in exclude and text not in rows:
            rows[text] = label
    return pd.DataFrame(
        {"text": list(rows), "label": list(rows.values()), "split": "train"},
        columns=["text", "label", "split"],
    )


def retrain(settings: Settings, request: RetrainRequest) -> Retrained:
    """Handle one request, idempotently: train and register unless its run exists, then make
    sure the version has the challenger alias and shadows in the experiments serving the model."""
    cfg = settings.retrain
    name = request.model.name
    found = find(settings, request.request_id)
    if found is None:
        lake, added = read_at(settings, cfg.min_feedback, cfg.sample or None)
        log.info(
            "retraining",
            extra={
                "model": name,
                "request_id": request.request_id,
                "alert_id": request.alert_id,
                "snapshot_id": lake.snapshot_id,
                "rows": len(lake.frame),
                "feedback_rows": added,
            },
        )
        tags = {
            TAG_ALERT: request.alert_id,
            TAG_METRIC: request.metric,
            TAG_SNAPSHOT: str(lake.snapshot_id),
            TAG_REQUEST: request.request_id,
            TAG_FEEDBACK_ROWS: str(added),
            "driftline.trigger.model_version": request.model.version,
            TAG_MODEL: name,
            TAG_WINDOW_END: f"{request.window_end.timestamp():.6f}",
        }
        model = train.train_candidate(settings, name, lake, cfg.sample or None, tags)
        found = (model.version, model.run_id, lake.snapshot_id, added)
    version, run_id, snapshot, added = found
    registry.set_alias(settings, name, version, cfg.alias)
    shadowed = add_shadow(settings, name, version)
    registry.client(settings).set_tag(run_id, TAG_DONE, "true")
    log.info(
        "challenger started",
        extra={"model": name, "version": version, "run_id": run_id, "experiments": shadowed},
    )
    return Retrained(name, version, run_id, snapshot, added, tuple(shadowed))


def find(settings: Settings, request_id: str) -> tuple[str, str, int, int] | None:
    """(version, run id, snapshot id, feedback rows) of the registered version a request made,
    or None when it made none yet."""
    client = registry.client(settings)
    for run in _runs(settings, f"tags.`{TAG_REQUEST}` = '{request_id}'"):
        for mv in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
            tags: dict[str, Any] = run.data.tags
            return (
                str(mv.version),
                run.info.run_id,
                int(tags[TAG_SNAPSHOT]),
                int(tags.get(TAG_FEEDBACK_ROWS, 0)),
            )
    return None


def _runs(settings: Settings, filter_string: str) -> list[Any]:
    client = registry.client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    return list(client.search_runs([experiment.experiment_id], filter_string=filter_string))


def is_done(settings: Settings, request_id: str) -> bool:
    done = f"tags.`{TAG_REQUEST}` = '{request_id}' and tags.`{TAG_DONE}` = 'true'"
    return bool(_runs(settings, done))


def covered_by(settings: Settings, request: RetrainRequest) -> str | None:
    """The request id of another retraining of the same model name whose alert came within
    `DRIFTLINE_RETRAIN_COOLDOWN_SECONDS` of this one's, if any.

    The monitor's cool-down is per model version; this one is per name, so that a retrained
    version shadowing the same drifting traffic (and alerting on it) does not retrain again.
    """
    end, cooldown = request.window_end.timestamp(), settings.retrain.cooldown_seconds
    for run in _runs(settings, f"tags.`{TAG_MODEL}` = '{request.model.name}'"):
        tags = run.data.tags
        other = tags.get(TAG_REQUEST)
        within = abs(float(tags.get(TAG_WINDOW_END, "inf")) - end) < cooldown
        if other != request.request_id and within:
            return str(other)
    return None


def shadow_arm_name(settings: Settings, name: str) -> str:
    """One retrained shadow per model and experiment: a newer one replaces it."""
    return f"{settings.retrain.alias}_{name}"


def add_shadow(settings: Settings, name: str, version: str) -> list[str]:
    """Add `name` version `version` as a shadow arm to every experiment one of whose answering
    arms serves `name` (the default one included once it has its two arms), through the
    experiment store; returns the experiments changed or already shadowing it."""
    store = experiments.ExperimentStore.of(settings)
    arm = Arm(
        name=shadow_arm_name(settings, name),
        model=name,
        version=version,
        shadow=True,
        shadow_sample=settings.retrain.shadow_sample,
    )
    shadowed = []
    stored = {e.name for e in store.list()}
    for experiment in experiments.current(settings, store).values():
        if not any(a.model == name for a in experiment.answering):
            continue
        if experiment.name not in stored and len(experiment.arms) < 2:
            continue  # the default with one arm: storing it would stop it growing a second
        shadowed.append(experiment.name)
        if arm in experiment.arms:
            continue
        arms = [a for a in experiment.arms if a.name != arm.name] + [arm]
        store.put(Experiment.model_validate(experiment.model_dump() | {"arms": arms}))
    return shadowed
