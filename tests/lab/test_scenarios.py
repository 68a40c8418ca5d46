"""The scenario registry: every trick judged somewhere, variants well formed."""

import pytest

from keras_tricks import tricks as registry
from keras_tricks.lab.scenarios import MODELS, SCENARIOS, scenarios_for, variants

pytestmark = pytest.mark.jax


@pytest.mark.parametrize("trick", registry.LAB_TRICKS)
def test_every_lab_trick_belongs_to_a_scenario(trick):
    assert scenarios_for([trick])


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_scenarios_are_well_formed(scenario):
    assert set(scenario.recipe) <= set(scenario.tricks) <= set(registry.LAB_TRICKS)
    assert not set(scenario.reference) & set(scenario.tricks)
    for name, value in scenario.reference.items():
        assert registry.get(name).accepts(value)
    for model in MODELS:
        settings = scenario.settings(model)
        assert settings["depth"] >= 1 and settings["epochs"] >= 1
    found = variants(scenario)
    kinds = [v.kind for v in found]
    assert kinds[0] == "reference" and kinds.count("recipe") == 1
    assert kinds.count("add-one") == len(scenario.tricks)
    assert kinds.count("leave-one-out") == len(scenario.recipe)
    recipe = next(v for v in found if v.kind == "recipe")
    for v in found:
        if v.kind == "add-one":
            assert set(v.values) - set(scenario.reference) == {v.trick}
        if v.kind == "leave-one-out":
            assert set(recipe.values) - set(v.values) == {v.trick}


def test_filtering_tricks_and_aliases():
    found = variants(SCENARIOS["deep"], ["norm"])
    assert [v.label for v in found] == ["reference", "+ bn"]
    assert found[1].values == {"bn": "batch"}
    assert scenarios_for(["bn"]) == ["deep", "high-lr"]
    with pytest.raises(ValueError, match="one of init, lsuv"):
        variants(SCENARIOS["deep"], ["warp"])
