"""`driftline retrain`: the job that turns retraining requests into shadow challengers.

It reads `retrain.requests` from the beginning (each start) and handles each request in turn
(`models.retrain.retrain`). Its position is the MLflow lineage itself: a request whose run is
marked done is skipped, so a replay registers nothing twice, and a request the job crashed on
(no done mark) is retrained at the next start instead of being lost. `up` runs it as the
`retrain` unit and restarts it when it dies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import IO

from confluent_kafka import Consumer, KafkaError, TopicPartition

from broker.clients import consumer_config
from driftline.settings import Settings
from driftline.topics import RETRAIN_REQUESTS, RetrainRequest, decode

log = logging.getLogger(__name__)

UNIT = "retrain"

FETCH_WAIT_MS = 1000
"""A retraining request may wait a second for the job: an idle job then costs the broker one
fetch a second instead of one every `DRIFTLINE_FETCH_WAIT_MS` (20 a second, 1% of a core)."""


def run(
    settings: Settings,
    out: IO[str],
    model: str | None = None,
    once: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Handle requests (for `model` only, if given) until `stop()`; with `once`, only those
    on the topic now. Returns how many it retrained or finished."""
    topic = RETRAIN_REQUESTS.name(settings.kafka)
    consumer = Consumer(
        consumer_config(settings, UNIT)
        | {"enable.partition.eof": True, "fetch.wait.max.ms": FETCH_WAIT_MS}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    handled, at_end = 0, set[int]()
    try:
        while not stop() and not (once and len(at_end) == len(partitions)):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                continue
            at_end.discard(msg.partition())
            try:
                request = decode(RetrainRequest, msg.value())
            except ValueError as exc:
                log.warning("invalid retraining request", extra={"reason": str(exc)})
                continue
            # Imported at the first request, not at start: MLflow, scikit-learn and pandas are
            # most of the memory of a job that waits for drift most of its life.
            from models import retrain, train

            if (model and request.model.name != model) or retrain.is_done(
                settings, request.request_id
            ):
                continue
            if request.model.name not in train.NAMES:
                print(f"skipping {request.model.key}: not a retrainable candidate", file=out)
                continue
            covered = retrain.covered_by(settings, request)
            if covered is not None:
                print(
                    f"skipping {request.model.key} {request.metric} alert {request.alert_id}: "
                    f"within the cool-down of request {covered}",
                    file=out,
                    flush=True,
                )
                continue
            print(
                f"retraining {request.model.key} for {request.metric} alert {request.alert_id}",
                file=out,
                flush=True,
            )
            done = retrain.retrain(settings, request)
            handled += 1
            print(
                f"  registered {done.name} version {done.version} (run {done.run_id}, lake "
                f"snapshot {done.snapshot_id}, {done.feedback_rows} feedback rows), shadowing in "
                f"{', '.join(done.experiments) or 'no experiment'}",
                file=out,
                flush=True,
            )
    finally:
        consumer.close()
    return handled
