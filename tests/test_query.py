"""Cross-run queries: the metrics and runs views, joins, broken files left out loudly."""

import json

import pytest

from collapselab.cli import main
from collapselab.errors import ResultsError
from collapselab.experiment.storage import read_metrics
from collapselab.experiment.sweep import plan_sweep, run_sweep
from collapselab.query import query

pytest.importorskip("duckdb", reason="collapselab query needs duckdb (pip install duckdb)")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A results root with one sweep of 2 points x 2 arms."""
    root = tmp_path_factory.mktemp("results")
    config = {
        "name": "q",
        "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 100}},
        "model": {"id": "gaussian"},
        "samples_per_generation": 20,
        "generations": 4,
        "seeds": 3,
        "metrics": ["variance", "tail_mass"],
        "arms": [{"name": "replace"}, {"name": "accumulate", "regime": "accumulate"}],
    }
    run_sweep(plan_sweep(config, ["samples_per_generation=10,40"], root=root), workers=1)
    return root


def test_metrics_view_holds_every_row_with_its_run_dir(root):
    frame = query("SELECT run_dir, count(*) AS n FROM metrics GROUP BY 1 ORDER BY 1", root)
    assert list(frame.run_dir) == [
        "q/samples_per_generation-10/accumulate",
        "q/samples_per_generation-10/replace",
        "q/samples_per_generation-40/accumulate",
        "q/samples_per_generation-40/replace",
    ]
    for run_dir, n in zip(frame.run_dir, frame.n, strict=True):
        assert n == len(read_metrics(root / run_dir / "metrics.parquet"))


def test_runs_view_flattens_configs_and_joins(root):
    runs = query(
        'SELECT run_dir, run_id, status, sweep, samples_per_generation, "regime.id" '
        "FROM runs ORDER BY run_dir",
        root,
    )
    assert list(runs.sweep.unique()) == ["q"] and set(runs.status) == {"complete"}
    assert list(runs["regime.id"]) == ["accumulate", "replace"] * 2
    joined = query(
        'SELECT r."regime.id" AS regime, r.samples_per_generation AS n, median(m.value) AS v '
        "FROM metrics m JOIN runs r USING (run_dir) "
        "WHERE m.metric = 'variance' AND m.generation = 3 AND m.source = 'simulation' "
        "GROUP BY ALL ORDER BY ALL",
        root,
    )
    assert len(joined) == 4
    direct = read_metrics(root / "q/samples_per_generation-10/replace/metrics.parquet")
    expected = direct.query("metric == 'variance' and generation == 3 and source == 'simulation'")
    row = joined[(joined.regime == "replace") & (joined.n == 10)]
    assert row.v.iloc[0] == pytest.approx(expected.value.median())


def test_cli_formats_and_one_line_errors(root, capsys):
    assert (
        main(["query", "SELECT count(*) AS n FROM runs", "--root", str(root), "--format", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"n": 4}]
    assert main(["query", "SELEC 1", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: query failed:") and len(err.strip().splitlines()) == 1
    assert main(["query", "SELECT 1", "--root", str(root / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_corrupt_or_partial_files_are_left_out_with_a_warning(tmp_path, root, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    truncated = copy / "q/samples_per_generation-10/replace/metrics.parquet"
    truncated.write_bytes(truncated.read_bytes()[:100])
    # Without a recorded checksum (older runs) the broken Parquet footer still tells.
    manifest_path = truncated.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["metrics_sha256"]
    manifest_path.write_text(json.dumps(manifest))
    flipped = copy / "q/samples_per_generation-40/replace/metrics.parquet"
    blob = bytearray(flipped.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # a byte inside a data page: only the checksum sees it
    flipped.write_bytes(bytes(blob))
    frame = query("SELECT DISTINCT run_dir FROM metrics ORDER BY 1", copy)
    assert list(frame.run_dir) == [
        "q/samples_per_generation-10/accumulate",
        "q/samples_per_generation-40/accumulate",
    ]
    err = capsys.readouterr().err
    assert "10/replace/metrics.parquet' is not a readable Parquet" in err
    assert "40/replace/metrics.parquet' does not match its recorded checksum" in err
    assert len(err.strip().splitlines()) == 2


def test_an_empty_root_is_a_clear_error(tmp_path):
    with pytest.raises(ResultsError, match=r"no readable metrics\.parquet"):
        query("SELECT 1", tmp_path)
