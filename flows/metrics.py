"""Prometheus metrics of the flows, in the process's default registry.

`bytewax.run` serves that registry at `/metrics` when the supervisor enables its dataflow API
server (`app.topology.metrics_env`), next to Bytewax's own per-step metrics
(`bytewax_item_inp_count_total`, `bytewax_*_duration_seconds`, ...):

    driftline_flow_messages_in_total{flow,topic}              taken from Kafka
    driftline_flow_messages_out_total{flow,topic}             acknowledged by the broker
    driftline_flow_dead_letters_total{flow,reason}            `reason_kind` of the reason
    driftline_flow_consumer_lag_messages{flow,topic,partition}  high watermark - next offset
    driftline_flow_last_message_timestamp_seconds{flow,topic} wall time of the last message in
    driftline_flow_lake_rows_total{table}, driftline_flow_lake_duplicates_total{table}
                                                              the lake writer's commits
    driftline_monitor_emission_seconds{flow}                  one window emission's cost
    driftline_model_*{model,version}                          the monitor's latest report

Counting costs one increment per micro-batch and topic, not per message.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from driftline.topics import Alert, DriftReport

MESSAGES_IN = Counter(
    "driftline_flow_messages_in", "Messages taken from Kafka, by topic.", ["flow", "topic"]
)
MESSAGES_OUT = Counter(
    "driftline_flow_messages_out",
    "Messages published and acknowledged by the broker, by topic.",
    ["flow", "topic"],
)
DEAD_LETTERS = Counter(
    "driftline_flow_dead_letters",
    "Messages a flow refused (sent to the deadletter topic), by kind of reason.",
    ["flow", "reason"],
)
CONSUMER_LAG = Gauge(
    "driftline_flow_consumer_lag_messages",
    "Messages on the broker not yet taken: the partition's high watermark (as of the last "
    "fetch) minus the next offset to read.",
    ["flow", "topic", "partition"],
)
LAST_MESSAGE = Gauge(
    "driftline_flow_last_message_timestamp_seconds",
    "Wall-clock time (Unix seconds) the flow last took a message from the topic.",
    ["flow", "topic"],
)
LAKE_ROWS = Counter(
    "driftline_flow_lake_rows", "Rows the lake writer committed, by table.", ["table"]
)
LAKE_DUPLICATES = Counter(
    "driftline_flow_lake_duplicates",
    "Rows the lake writer skipped as already stored (a replay, a re-delivery), by table.",
    ["table"],
)
EMISSION = Histogram(
    "driftline_monitor_emission_seconds",
    "Time of one monitor step that emitted window reports (statistics of every report).",
    ["flow"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

MODEL = ["model", "version"]
MODEL_KS_D = Gauge("driftline_model_ks_d", "Latest window's KS D of predictions.", MODEL)
MODEL_DOMAIN_AUC = Gauge(
    "driftline_model_domain_auc", "Latest computed domain-classifier ROC AUC.", MODEL
)
MODEL_MMD = Gauge("driftline_model_mmd", "Latest window's squared MMD of feature rows.", MODEL)
MODEL_CBPE_F1 = Gauge("driftline_model_cbpe_f1", "Latest window's CBPE-estimated F1.", MODEL)
MODEL_FEEDBACK_F1 = Gauge(
    "driftline_model_feedback_f1", "Latest F1 against feedback (windows with feedback).", MODEL
)
MODEL_EVENTS = Gauge("driftline_model_window_events", "Inferences in the latest window.", MODEL)
MODEL_SHARE = Gauge(
    "driftline_model_traffic_share", "The model's share of traffic in its latest window.", MODEL
)
MODEL_WINDOW_END = Gauge(
    "driftline_model_window_end_timestamp_seconds",
    "Event-time end (Unix seconds) of the latest window reported.",
    MODEL,
)
MODEL_ALERTS = Counter("driftline_model_alerts", "Alerts raised, by metric.", [*MODEL, "metric"])

_REASONS = (
    ("invalid message", "invalid"),
    ("not json", "not_json"),
    ("message has no value", "no_value"),
    ("no schema", "no_schema"),
    ("late:", "late"),
    ("no result", "feedback_unmatched"),
    ("monitor:", "monitor_error"),
)


def reason_kind(reason: str) -> str:
    """A dead letter's reason as one of a few label values (a reason carries message details).

    >>> reason_kind("not JSON: unexpected character: line 1 column 1 (char 0)")
    'not_json'
    >>> reason_kind("invalid message: data: String should have at least 1 character")
    'invalid'
    >>> reason_kind("late: event time 40.000s is before the watermark 70.000s"), reason_kind("?")
    ('late', 'other')
    """
    lowered = reason.lower()
    for prefix, kind in _REASONS:
        if lowered.startswith(prefix):
            return kind
    return "other"


def report(report: DriftReport) -> None:
    """Set the model's gauges from a drift report. A statistic the report leaves out (no domain
    classifier this emission, no feedback in the window) keeps its last value."""
    labels = (report.model.name, report.model.version)
    values = {
        MODEL_KS_D: report.ks_d,
        MODEL_DOMAIN_AUC: report.domain_auc,
        MODEL_MMD: report.mmd,
        MODEL_CBPE_F1: report.estimated.f1,
        MODEL_FEEDBACK_F1: report.feedback.f1,
        MODEL_EVENTS: report.n,
        MODEL_SHARE: report.share,
        MODEL_WINDOW_END: report.window_end.timestamp(),
    }
    for gauge, value in values.items():
        if value is not None:
            gauge.labels(*labels).set(value)


def alert(alert: Alert) -> None:
    MODEL_ALERTS.labels(alert.model.name, alert.model.version, alert.metric).inc()
