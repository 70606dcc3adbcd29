"""``report SWEEP_DIR``: one comparison of a sweep's points, ``n=100`` ordered numerically,
colours grouped by arm."""

import pytest
import yaml

from collapselab.cli import main
from collapselab.report import runs
from collapselab.report.style import PALETTE, looks


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    config = {
        "name": "sizes",
        "data": {"id": "gaussian"},
        "model": {"id": "gaussian"},
        "regime": {"id": "replace"},
        "samples_per_generation": 10,
        "generations": 3,
        "seeds": 2,
        "metrics": ["variance"],
        "arms": [{"name": "replace"}, {"name": "accumulate", "regime": {"id": "accumulate"}}],
    }
    path = root / "sizes.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["sweep", str(path), "--root", str(root), "--workers", "1", "--quiet"]
    assert main([*argv, "--grid", "samples_per_generation=100,20,50"]) == 0
    return root / "sizes"


def test_a_sweep_is_one_group_labelled_n_and_ordered_numerically(sweep_dir):
    loaded = runs.load_all([sweep_dir])
    assert len(loaded) == 3 and all(r.sweep == sweep_dir for r in loaded)
    (group,) = runs.groups(loaded)
    assert group.by_arm
    assert [s.label for s in group.series] == [
        "replace: n=20",
        "replace: n=50",
        "replace: n=100",
        "accumulate: n=20",
        "accumulate: n=50",
        "accumulate: n=100",
    ]
    styles = looks(group)
    assert len(set(styles)) == 6  # no two series alike
    # each arm one colour: its largest point in the palette colour, the others lighter
    assert styles[2].colour.lower() == PALETTE[0].lower()
    assert styles[5].colour.lower() == PALETTE[1].lower()
    for arm, colour in ((styles[:3], PALETTE[0]), (styles[3:], PALETTE[1])):
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        for look in arm:
            r, g, b = (int(look.colour[i : i + 2], 16) for i in (1, 3, 5))
            assert r >= red and g >= green and b >= blue  # a tint of the arm's colour


def test_report_of_a_sweep_folder_writes_one_comparison(sweep_dir, capsys):
    assert main(["report", str(sweep_dir)]) == 0
    assert f"report: {sweep_dir / 'report.html'}" in capsys.readouterr().out
    text = (sweep_dir / "report.html").read_text(encoding="utf-8")
    assert "n=20 vs n=50 vs n=100" in text  # the title names the points in order
    assert text.count("<table class='summary'") == 6  # every arm of every point


def test_report_of_a_sweep_that_has_not_run_is_one_line(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text('{"points": [{"name": "a"}], "axes": []}')
    assert main(["report", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no point that ran" in err
