import pytest
from pydantic import ValidationError

from driftline.ab import Arm, Experiment


def arm(name: str = "A", **overrides) -> Arm:
    fields = {"name": name, "model": "spam", "alias": "champion", "weight": 1.0} | overrides
    return Arm(**fields)


def test_json_round_trip_returns_an_equal_experiment(make_experiment):
    exp = make_experiment(0.9, 0.1, mode="bandit")
    exp = exp.model_copy(update={"description": "tfidf vs minilm"})
    payload = exp.model_dump(mode="json")
    assert payload["arms"][0] == {
        "name": "A",
        "model": "spam",
        "alias": "alias-0",
        "version": None,
        "weight": 0.9,
        "shadow": False,
        "shadow_sample": 1.0,
    }
    assert Experiment.model_validate(payload) == exp


def test_experiment_is_immutable(make_experiment):
    exp = make_experiment(1.0)
    with pytest.raises(ValidationError, match="frozen"):
        exp.name = "other"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"alias": None}, "exactly one of alias or version, got neither"),
        ({"version": "3"}, "exactly one of alias or version, got both"),
        ({"weight": 0.0}, "greater than 0"),
        ({"weight": -1.0}, "greater than 0"),
        ({"weight": float("inf")}, "finite number"),
        ({"name": ""}, "at least 1 character"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_arm_is_rejected_with_its_reason(overrides, reason):
    with pytest.raises(ValidationError, match=reason):
        arm(**overrides)


def test_arm_pinned_to_a_version_is_valid():
    assert arm(alias=None, version="7").version == "7"


def test_experiment_without_arms_is_rejected():
    with pytest.raises(ValidationError, match="at least 1 item"):
        Experiment(name="exp", arms=())


def test_repeated_arm_names_are_rejected_and_named():
    with pytest.raises(ValidationError, match=r"repeats arm names \['A'\]"):
        Experiment(name="exp", arms=(arm("A"), arm("B"), arm("A")))


def test_unknown_mode_is_rejected():
    with pytest.raises(ValidationError, match="'fixed' or 'bandit'"):
        Experiment(name="exp", arms=(arm(),), mode="greedy")


def test_arm_lookup_by_name(make_experiment):
    exp = make_experiment(1.0, 2.0)
    assert exp.arm("B").weight == 2.0
    with pytest.raises(KeyError, match="no arm 'Z'"):
        exp.arm("Z")


def test_an_experiment_needs_an_arm_that_answers():
    with pytest.raises(ValidationError, match="needs an arm that is not a shadow"):
        Experiment(name="exp", arms=(arm("S", shadow=True),))
    both = Experiment(name="exp", arms=(arm("A"), arm("S", shadow=True, shadow_sample=0.1)))
    assert [a.name for a in both.answering] == ["A"] and [a.name for a in both.shadows] == ["S"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"shadow_sample": 0.5}, "sets shadow_sample but is not a shadow arm"),
        ({"shadow": True, "shadow_sample": 1.5}, "less than or equal to 1"),
        ({"shadow": True, "shadow_sample": -0.1}, "greater than or equal to 0"),
    ],
)
def test_invalid_shadow_arm_is_rejected_with_its_reason(overrides, reason):
    with pytest.raises(ValidationError, match=reason):
        arm(**overrides)


def test_an_experiment_stored_before_shadow_arms_still_loads():
    stored = {"name": "e", "arms": [{"name": "A", "model": "m", "alias": "c", "weight": 2}]}
    assert not Experiment.model_validate(stored).arms[0].shadow
