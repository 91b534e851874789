"""The default experiment: the served model against the registered model most different from it.

As the reference system does, requests that name no experiment are split 50/50 between the
served model (`default_model@default_alias`) and another registered model. Models are named
`<task>_<algorithm>_<features>`, so "most different" is the one sharing the fewest name parts.
While only one model is registered the default has a single arm and is not stored, so it grows
to two arms by itself once a second model appears.

>>> from driftline.settings import ABSettings, ModelSettings
>>> registered = {"s_logreg_tfidf": ({"champion"}, "1"), "s_xgboost_minilm": (set(), "3")}
>>> experiment, complete = default_experiment(ModelSettings(default_model="s_logreg_tfidf"),
...                                           ABSettings(), registered)
>>> [(a.model, a.alias, a.version) for a in experiment.arms], complete
([('s_logreg_tfidf', 'champion', None), ('s_xgboost_minilm', None, '3')], True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from driftline.ab.experiment import Arm, Experiment
from driftline.settings import ABSettings, ModelSettings

Registered = Mapping[str, tuple[set[str], str | None]]
"""Registered model name -> (its aliases, its latest version)."""

DESCRIPTION = "served model vs the most different registered model, 50/50"


def most_different(served: str, candidates: Sequence[str]) -> str | None:
    """The candidate sharing the fewest `_`-separated name parts with `served` (ties: by name).

    >>> most_different("s_logreg_tfidf", ["s_logreg_minilm", "s_xgboost_minilm", "s_xgb_tfidf"])
    's_xgboost_minilm'
    """
    parts = set(served.split("_"))
    others = sorted(c for c in candidates if c != served)
    if not others:
        return None
    return min(others, key=lambda c: len(parts & set(c.split("_"))))


def default_experiment(
    models: ModelSettings, ab: ABSettings, registered: Registered
) -> tuple[Experiment, bool]:
    """The default experiment, and whether it is complete (two arms) and so worth storing."""
    alias = models.default_alias
    served = Arm(name=models.default_model, model=models.default_model, alias=alias, weight=0.5)
    candidates = {name: found for name, found in registered.items() if any(found)}
    other = most_different(models.default_model, list(candidates))
    arms: tuple[Arm, ...] = (served,)
    if other is not None:
        aliases, latest = candidates[other]
        pinned = None if alias in aliases or not latest else latest
        by_alias = None if pinned else (alias if alias in aliases else min(aliases))
        arms = (served, Arm(name=other, model=other, weight=0.5, alias=by_alias, version=pinned))
    experiment = Experiment(name=ab.default_experiment, arms=arms, description=DESCRIPTION)
    return experiment, len(arms) > 1
