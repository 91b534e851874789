"""Settings for the monitor's window tests, with short names for the window geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftline.settings import Settings


def window_settings(length: float, slide: float, lateness: float, **rest: Any) -> Settings:
    """Settings with `monitor_window_seconds=length` etc.; `rest` are other Settings fields
    (a `monitor_` prefix may be left out)."""
    fields = {k if hasattr(Settings, k) else f"monitor_{k}": v for k, v in rest.items()}
    return Settings(
        Path("."),
        monitor_window_seconds=length,
        monitor_slide_seconds=slide,
        monitor_lateness_seconds=lateness,
        **fields,
    )
