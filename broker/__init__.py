"""The Kafka broker, as driftline uses it: client settings, topic administration, and the
embedded broker that `driftline up` runs when no external one is configured."""
