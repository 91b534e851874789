"""A/B testing: experiments, sticky assignment, a Thompson-sampling bandit and an mSPRT.

Only the light parts are exported here; the bandit (`driftline.ab.thompson`) and the sequential
test (`driftline.ab.sequential`) need SciPy, so processes that only read experiments (the
gateway, the CLI) import them from their modules when they need them.
"""

from driftline.ab.assignment import assign_arm, unit_interval
from driftline.ab.experiment import Arm, Experiment, RolloutSpec

__all__ = ["Arm", "Experiment", "RolloutSpec", "assign_arm", "unit_interval"]
