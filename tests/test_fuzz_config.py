"""Fuzzed configs and command lines: every malformed input is exit code 2 and one line
starting with 'error:', never a traceback. Nothing is run: sweeps are planned with
--dry-run, which validates every point exactly as a real run would."""

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapselab.cli import main

VALID = {
    "name": "fz",
    "data": {"id": "gaussian", "params": {"dim": 1}},
    "model": {"id": "gaussian", "params": {}},
    "regime": {"id": "fresh", "params": {"real_fraction": 0.1}},
    "samples_per_generation": 10,
    "generations": 2,
    "seeds": 1,
    "metrics": ["variance"],
}

FIELDS = [*VALID, "arms", "batched", "checkpoint_every", "root_seed", "real_samples", "decoding"]
PATHS = [
    (),
    ("data",),
    ("data", "params"),
    ("model",),
    ("model", "params"),
    ("regime",),
    ("regime", "params"),
    ("metrics",),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["gaussian", "kde", "gmm", "replace", "accumulate", "variance", "../x", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated_configs(draw):
    """A valid config with one to three fields replaced, removed or added."""
    import copy

    config = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        target = config
        for part in path:
            if not isinstance(target, dict) or not isinstance(target.get(part), dict | list):
                break
            target = target[part]
        if isinstance(target, list):
            target.append(draw(values))
            continue
        if not isinstance(target, dict):
            continue
        action = draw(st.sampled_from(["set", "drop", "add"]))
        keys = list(target) or ["x"]
        if action == "drop" and target:
            target.pop(draw(st.sampled_from(list(target))))
        elif action == "add":
            target[draw(st.sampled_from([*FIELDS, "unknown", "params", "id"]))] = draw(values)
        else:
            target[draw(st.sampled_from(keys))] = draw(values)
    return config


def one_line_or_ok(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    _, err = capsys.readouterr()
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "Traceback" not in err
    return code


SETTINGS = settings(
    max_examples=120,
    deadline=None,
    # The same examples every run: a suite that passes passes again. (Random
    # exploration once found a parameter named 'id' crashing make(); that case is
    # now a fixed test in test_cli.py.)
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(config=mutated_configs())
def test_mutated_configs_are_valid_or_one_line_errors(tmp_path, capsys, config):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["sweep", str(path), "--grid", "seeds=1,2", "--root", str(tmp_path), "--dry-run"]
    one_line_or_ok(capsys, argv)
    assert not (tmp_path / "fz").exists()  # a dry run writes nothing


@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_yaml_text_is_valid_or_one_line_error(tmp_path, capsys, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    one_line_or_ok(
        capsys, ["sweep", str(path), "--grid", "seeds=1", "--root", str(tmp_path), "--dry-run"]
    )


@SETTINGS
@given(
    grid=st.lists(st.text(max_size=30), min_size=1, max_size=3),
    overrides=st.lists(st.text(max_size=30), max_size=2),
)
def test_arbitrary_grid_and_set_arguments(tmp_path, capsys, grid, overrides):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(VALID))
    argv = ["sweep", str(path), "--root", str(tmp_path), "--dry-run"]
    for axis in grid:
        argv.append(f"--grid={axis}")
    for assignment in overrides:
        argv.append(f"--set={assignment}")
    one_line_or_ok(capsys, argv)


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        ({"seeds": "many"}, "seeds"),
        ({"generations": -1}, "generations"),
        ({"metrics": []}, "metrics"),
        ({"data": {"id": "gaussian", "params": {"dim": "x"}}}, "dim"),
        ({"model": ["gaussian"]}, "model"),
        ({"regime": {"id": "fresh", "params": {"real_fraction": float("nan")}}}, "real_fraction"),
        ({"arms": [{"name": "a", "arms": []}]}, "arms"),
    ],
)
def test_known_malformed_configs_exit_2(tmp_path, capsys, change, hint):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**VALID, **change}))
    argv = ["sweep", str(path), "--grid", "seeds=1", "--root", str(tmp_path), "--dry-run"]
    assert one_line_or_ok(capsys, argv) == 2
    argv = ["run", str(path), "--out", str(tmp_path / "out")]
    assert one_line_or_ok(capsys, argv) == 2
    assert not (tmp_path / "out").exists()
