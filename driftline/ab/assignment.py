"""Deterministic, sticky assignment of a unit (subject or request) to an experiment arm.

A stable hash of (experiment name, unit key) gives a point ``u`` in [0, 1), and the arm is the
one whose slice of the cumulative normalised weights contains ``u``. No state is kept, so every
gateway and flow worker, in any process and on any Python version, routes a unit the same way,
and a subject keeps seeing one model for the life of the experiment. Hashing with the experiment
name makes assignments in different experiments independent of each other. Built-in ``hash()``
is salted per process, so blake2b is used instead.

Parameters
----------
experiment
    The experiment whose arms and weights are used (``fixed`` mode).
unit_key
    The subject key when the request has one (stickiness per user), else the inference id.

Example
-------
>>> from driftline.ab import Arm, Experiment, assign_arm
>>> exp = Experiment(
...     name="exp-1",
...     arms=(
...         Arm(name="A", model="spam", alias="champion", weight=0.5),
...         Arm(name="B", model="spam", alias="challenger", weight=0.5),
...     ),
... )
>>> [assign_arm(exp, user).name for user in ("alice", "bob", "carol", "dave", "erin", "alice")]
['B', 'B', 'B', 'B', 'A', 'B']
>>> sum(assign_arm(exp, f"request-{i}").name == "A" for i in range(10_000))
4901
>>> round(unit_interval("exp-1", "alice"), 6)
0.751702

References
----------
Kohavi, Tang and Xu (2020), *Trustworthy Online Controlled Experiments*, ch. 14
(randomization unit and hash-based assignment).

"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from itertools import accumulate

from driftline.ab.experiment import Arm, Experiment

__all__ = ["assign_arm", "unit_interval"]


def unit_interval(experiment_name: str, unit_key: str) -> float:
    """Uniform point in [0, 1) for the pair, identical in every process and Python version."""
    name = experiment_name.encode()
    # Length prefix keeps ("ab", "c") and ("a", "bc") apart.
    digest = hashlib.blake2b(b"%d:%s%s" % (len(name), name, unit_key.encode()), digest_size=8)
    # Top 53 bits: exactly representable, so the result is never rounded up to 1.0.
    return (int.from_bytes(digest.digest(), "big") >> 11) / 2.0**53


def assign_arm(experiment: Experiment, unit_key: str) -> Arm:
    """The arm that ``unit_key`` always gets in ``experiment``, with probability ∝ weight,
    among the arms that answer (shadow arms never do)."""
    arms = experiment.answering
    bounds = list(accumulate(arm.weight for arm in arms))
    u = unit_interval(experiment.name, unit_key) * bounds[-1]
    # min() guards the rounding case where u lands on the last cumulative bound.
    return arms[min(bisect_right(bounds, u), len(bounds) - 1)]
