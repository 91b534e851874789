"""Benchmark of request-reply latency through a running stack (`make up` in another terminal).

    .venv/bin/python bench/gateway_latency.py [--requests 200] [--concurrency 8]

Prints, from one run, against the configured gateway and broker (DRIFTLINE_* variables):
1. baselines: `GET /health` (HTTP only) and a bare Kafka produce -> consume round trip on a topic
   of its own (`<prefix>bench.latency`, created if missing);
2. `POST /inference` one at a time: p50/p90/p99 per served model (HTTP -> requests topic ->
   inference flow -> results topic -> HTTP), and p50 against the two baselines as a ratio;
3. throughput with `--concurrency` clients in parallel.
The texts are tweets from the monitor set, with `log_to_lakehouse` off so the lake is untouched
(the monitor still sees them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from broker.clients import admin, consumer_config, producer_config
from driftline import settings
from driftline.settings import Settings
from models.datasets import sentiment_binary


def percentiles(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"p50 {q[49]:6.1f} ms  p90 {q[89]:6.1f} ms  p99 {q[98]:6.1f} ms  (n={len(ms)})"


def http_baseline(client: httpx.Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        client.get("/health").raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return out


def kafka_baseline(s: Settings, n: int) -> list[float]:
    topic = s.kafka.topic_prefix + "bench.latency"
    client = admin(s)
    if topic not in client.list_topics(timeout=5).topics:
        client.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    producer = Producer(producer_config(s))
    consumer = Consumer(consumer_config(s, "bench"))
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
    consumer.assign([TopicPartition(topic, 0, high)])
    out = []
    for _ in range(n):
        marker = uuid.uuid4().bytes
        started = time.perf_counter()
        producer.produce(topic, marker)
        producer.flush()
        while (msg := consumer.poll(1.0)) is None or msg.value() != marker:
            pass
        out.append((time.perf_counter() - started) * 1000)
    consumer.close()
    return out


def post(client: httpx.Client, text: str) -> tuple[str, float]:
    started = time.perf_counter()
    response = client.post("/inference", json={"data": text, "log_to_lakehouse": False})
    response.raise_for_status()
    model = response.json()["model"]
    return f"{model['name']}/{model['version']}", (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    s = settings.load()
    base = f"http://{s.gateway.host}:{s.gateway.port}"
    texts = sentiment_binary()["text"].sample(args.requests, random_state=0).tolist()

    with httpx.Client(base_url=base, timeout=30) as client:
        try:
            ready = client.get("/ready").status_code == 200
        except httpx.ConnectError:
            ready = False
        if not ready:
            sys.exit(f"no ready stack at {base}: start it with `make up` and wait for its banner")
        for text in texts[:10]:  # warm-up: models loaded, connections open
            post(client, text)
        http = http_baseline(client, args.requests)
        kafka = kafka_baseline(s, args.requests)
        by_model: dict[str, list[float]] = defaultdict(list)
        for text in texts:
            model, ms = post(client, text)
            by_model[model].append(ms)

    print(f"gateway {base}, broker {s.kafka.brokers}; {args.requests} requests, one at a time")
    print(f"baseline GET /health:              {percentiles(http)}")
    print(f"baseline Kafka produce -> consume: {percentiles(kafka)}")
    floor = statistics.median(http) + 2 * statistics.median(kafka)
    for model, ms in sorted(by_model.items()):
        print(f"POST /inference, {model}: {percentiles(ms)}")
        print(
            f"  p50 over HTTP + two Kafka hops ({floor:.1f} ms): "
            f"{statistics.median(ms) / floor:.1f}x"
        )

    with (
        httpx.Client(base_url=base, timeout=30) as client,
        ThreadPoolExecutor(args.concurrency) as pool,
    ):
        started = time.perf_counter()
        latencies = [ms for _, ms in pool.map(lambda t: post(client, t), texts)]
        seconds = time.perf_counter() - started
    print(
        f"{args.concurrency} clients in parallel: {len(texts) / seconds:,.0f} requests/s, "
        f"{percentiles(latencies)}"
    )


if __name__ == "__main__":
    main()
