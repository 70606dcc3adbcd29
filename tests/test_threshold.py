"""verdict --threshold-of (issue 16f): bisection for the real share where collapse stops,
against the closed forms of the fresh regime."""

import json

import pytest

from collapselab.cli import main
from collapselab.experiment.config import load_config, read_yaml
from collapselab.experiment.runner import run
from collapselab.report.threshold import threshold_of

EXPECTED = "expected variance stays above the tolerance"
PROTECTED = "at least 0.5 of seeds provably protected"


@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    """phase-gaussian's Gaussian at n = 20: 64 seeds, 100 generations, 10% real."""
    data = read_yaml("phase-gaussian")[0]
    data.update(samples_per_generation=20, generations=100, seeds=64, name="pg20")
    data["regime"]["params"]["real_fraction"] = 0.1
    folder = tmp_path_factory.mktemp("threshold") / "pg20"
    run(load_config(data), folder)
    return folder


@pytest.mark.slow
def test_bisection_lands_between_the_closed_forms(gaussian_run):
    found = threshold_of(gaussian_run, "regime.params.real_fraction", high=0.3, state_only=True)
    assert found.points[0].fires is True  # replace: every seed collapses
    assert found.points[-1].fires is False  # 6 real samples of 20 hold the variance
    # Below 2 / n the expected variance tends to 0 (every seed collapses in a long
    # chain); at the protected share at least half the seeds never can: the share where
    # most seeds stop collapsing lies between.
    assert found.theory[EXPECTED] == pytest.approx(2 / 20)
    assert found.low is not None and found.high is not None
    assert found.low < found.theory[EXPECTED] <= found.high <= found.theory[PROTECTED]
    # every value tried is a run of its own, reused by a second search
    again = threshold_of(gaussian_run, "regime.params.real_fraction", high=0.3, state_only=True)
    assert [p.value for p in again.points] == [p.value for p in found.points]
    assert [p.row.outcome for p in again.points] == [p.row.outcome for p in found.points]


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--threshold-of", "model.params.unbiased"], "more means less collapse"),
        (["--threshold-of", "samples_per_generation", "--definition", "9"], "--definition"),
        (["--threshold-of", "regime.params.real_fraction", "--range", "0.5", "0.2"], "--range"),
        (["--threshold-of", "regime.params.real_fraction", "--arm", "nope"], "--arm 'nope'"),
        # a bad verdict threshold is refused before the first point is run
        (["--threshold-of", "regime.params.real_fraction", "--margin", "-1"], "'margin'"),
        (
            ["--threshold-of", "regime.params.real_fraction", "--definition", "1", "--state-only"],
            "--state-only",
        ),
    ],
)
def test_refusals_are_one_line(gaussian_run, capsys, extra, says):
    before = sorted(p.name for p in gaussian_run.parent.iterdir())
    assert main(["verdict", str(gaussian_run), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert sorted(p.name for p in gaussian_run.parent.iterdir()) == before


def test_json_names_the_bracket(gaussian_run, capsys, tmp_path):
    code = main(
        [
            "verdict",
            str(gaussian_run),
            "--threshold-of",
            "regime.params.real_fraction",
            "--range",
            "0.25",
            "0.3",
            "--state-only",
            "--out",
            str(tmp_path / "points"),
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    # 5 and 6 real samples of 20 both keep most seeds above the tolerance
    assert result["bracket"] == [None, 0.25]
    assert [p["outcome"] for p in result["points"]] == ["not collapsed", "not collapsed"]
    assert len(list((tmp_path / "points").iterdir())) == 2
