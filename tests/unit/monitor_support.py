"""Monitor configuration and windows for the monitor's unit tests, with short names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftline.monitoring.reference import Reference
from driftline.monitoring.window import ModelWindow
from driftline.settings import AlertSettings, MonitorSettings, Settings
from driftline.topics import ModelRef

MODEL = ModelRef(name="m", version="1")


def window_settings(length: float, slide: float, lateness: float, **rest: Any) -> MonitorSettings:
    """The monitor's settings with the window geometry given by short names."""
    return MonitorSettings(
        window_seconds=length, slide_seconds=slide, lateness_seconds=lateness, **rest
    )


def model_window(
    reference: Reference,
    config: MonitorSettings,
    alerts: AlertSettings | None = None,
    clock: Any = lambda: 0.0,
) -> ModelWindow:
    """The window of model `m/1` at threshold 0.5, on a clock that stands still by default."""
    return ModelWindow(MODEL, reference, config, alerts or AlertSettings(), 0.5, clock)


def flow_settings(length: float, slide: float, lateness: float, **rest: Any) -> Settings:
    """Whole settings (as the flow's steps take them) with this window geometry."""
    return Settings(home=Path("."), monitor=window_settings(length, slide, lateness, **rest))
