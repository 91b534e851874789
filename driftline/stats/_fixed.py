"""Fixed-point units that make sums of floats exactly reversible.

A sliding window adds every value once and removes it later. With float sums the rounding of
those two operations does not cancel, so after millions of events an empty window can hold
1e-12 instead of 0, and a ratio of two such residues is garbage. Counting in integer units of
2**-64 instead makes every sum exact (Python ints do not overflow): `remove` undoes `update`
bit for bit, and a value in [0, 1] loses at most 2**-65 when converted.

Examples
--------
>>> 0.1 + 0.2 - 0.1 - 0.2
2.7755575615628914e-17
>>> to_units(0.1) + to_units(0.2) - to_units(0.1) - to_units(0.2)
0
>>> from_units(to_units(0.1) + to_units(0.2)) == 0.1 + 0.2
True

"""

from __future__ import annotations

ONE = 2**64


def to_units(x: float) -> int:
    """x as an integer number of 2**-64 units (nearest)."""
    return round(x * ONE)


def from_units(units: int) -> float:
    """The float nearest to `units` * 2**-64."""
    return units / ONE
