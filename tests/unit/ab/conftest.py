import pytest

from driftline.ab import Arm, Experiment


@pytest.fixture
def make_experiment():
    """Build an experiment from arm weights; arms are named A, B, C, ... in order."""

    def make(*weights: float, name: str = "exp", mode: str = "fixed") -> Experiment:
        arms = tuple(
            Arm(name=chr(ord("A") + i), model="spam", alias=f"alias-{i}", weight=w)
            for i, w in enumerate(weights)
        )
        return Experiment(name=name, arms=arms, mode=mode)

    return make
