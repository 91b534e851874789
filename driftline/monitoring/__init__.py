"""Monitoring logic, pure: per-model sliding windows, traffic share, feature drift, alerts.

`flows.monitor` drives it with Bytewax; nothing here does I/O or reads the system clock.

- `window`: one model version's event-time sliding window and its incremental statistics
- `watermark`: event time, and the wall clock once events stop
- `share`: each model's share of all traffic per window
- `domain`: the domain classifier on a bounded, reproducible sample
- `alerts`: when statistics raise alerts, and their ids
- `reference`: what a window is compared with (held-out probabilities, features, calibrator)
- `rows`: feature rows as bytes
"""
