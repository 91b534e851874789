"""Bytewax dataflows; run one with `python -m bytewax.run flows.<name>:flow`."""
