"""Every preset that cites a paper, run small, decides each of its claims as recorded.

Each preset runs at a reduced size (:data:`SIZES`: fewer seeds, generations or samples,
and only the arms its claims name) that still decides every claim: a claim the preset
says reproduces (``reproduced``, default true) must come out ``yes``, one it says does
not must come out ``no``; ``undecided`` or ``not run`` fail. A preset with claims and
no entry here fails too: give it a size. The few claims that only a preset's own size
decides (a neural model's exact value) are listed, with why, in :data:`FULL_SIZE_ONLY`.
"""

import copy

import pytest

from collapselab.experiment.config import apply_set, load_config, preset_names, read_yaml
from collapselab.experiment.runner import run
from collapselab.report.claims import evaluate, parse

#: Reduced sizes: ``--set``-style overrides, applied to the base config and to every arm
#: that sets the same top-level field itself.
SIZES: dict[str, list[str]] = {
    "shumailov-gaussian": ["seeds=100", "generations=60"],
    "kazdan-regimes": ["seeds=200", "generations=40"],
    "gerstgrasser-linreg": ["seeds=200", "generations=12"],
    "mad-loops": ["seeds=40", "generations=20"],
    "zipf-tails": ["seeds=30", "generations=10", "samples_per_generation=2000"],
    "shumailov-gmm": ["samples_per_generation=500", "generations=25"],
    "verifier-arith": ["seeds=4", "generations=4", "samples_per_generation=400"],
    "ngram-shakespeare": ["seeds=3", "generations=6", "samples_per_generation=1000"],
    "subliminal-digits": ["seeds=8", "samples_per_generation=6000"],
    "ferbach-curation": ["seeds=4", "generations=10"],
    "self-correction": ["seeds=3", "generations=6"],
    "self-correction-gaussian": ["seeds=30", "generations=60"],
    "strong-collapse": ["seeds=40"],
    "shumailov-vae": [
        "generations=2",
        "samples_per_generation=300",
        "real_samples=300",
        "model.params.steps=100",
    ],
}
#: Claims (by position) that only the preset's own size decides, and why; the test runs
#: a preset without them (and without the arms only they name). Their outcomes at the
#: preset's size are in the README's claim tables.
FULL_SIZE_ONLY: dict[str, dict[int, str]] = {
    "nature-lm": {
        i: "needs the 3,000-step pretrained generation 0 and nine generations "
        "(about 22 CPU-minutes); outcomes in the preset's description"
        for i in range(4)
    },
    "shumailov-vae": {
        0: "the latent spread's ratio is that of a VAE trained 500 steps on 1,000 digits",
        3: "the 10%-real arm's edge needs the full model and 10 generations",
    },
}
#: Presets whose models need the optional extras.
NEEDS = {"shumailov-vae": ("torch", "mlxtend")}

WITH_CLAIMS = [name for name in preset_names() if read_yaml(name)[0].get("claims")]


def reduced(name: str) -> dict:
    """The preset's config at its reduced size, with only the claims it decides there and
    the arms they name."""
    data = copy.deepcopy(read_yaml(name)[0])
    skip = FULL_SIZE_ONLY.get(name, {})
    data["claims"] = [c for i, c in enumerate(data["claims"]) if i not in skip]
    claims = parse(data["claims"])
    named = {a for c in claims for a in (c.get("arms") or [c.get("arm")])}
    data["arms"] = [arm for arm in data.get("arms", []) if arm["name"] in named]
    for assignment in SIZES[name]:
        apply_set(data, assignment)
        top = assignment.split("=")[0].split(".")[0]
        for arm in data["arms"]:
            own = arm.get(top)
            if own is None or (
                top == "model" and own.get("id", data["model"]["id"]) != data["model"]["id"]
            ):
                continue  # inherits the base's value, or brings a model of its own
            apply_set(arm, assignment)
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_CLAIMS)
def test_preset_decides_its_claims(name, tmp_path):
    if name not in SIZES and len(FULL_SIZE_ONLY.get(name, {})) == len(read_yaml(name)[0]["claims"]):
        pytest.skip(f"{name}: every claim needs the preset's own size ({FULL_SIZE_ONLY[name][0]})")
    assert name in SIZES, f"preset {name!r} has claims but no reduced size in SIZES"
    for module in NEEDS.get(name, ()):
        pytest.importorskip(module)
    config = load_config(reduced(name))
    result = run(config, tmp_path / name)
    outcomes = evaluate(result.directory)  # the run's own claims: those decided at this size
    assert outcomes
    for outcome in outcomes:
        expected = "yes" if outcome.claim.reproduced else "no"
        assert outcome.holds == expected, (
            f"{name}: {outcome.claim.claim!r} came out {outcome.holds} (expected {expected}): "
            f"{outcome.ours} {outcome.why}"
        )
