"""``run --save-generations``: each generation's output, per seed, as files read back as data."""

import json

import numpy as np
import pandas as pd
import pytest

from collapselab.cli import main
from collapselab.core import DataKind
from collapselab.experiment.config import load_config
from collapselab.experiment.generations import SaveGenerations, generation_path
from collapselab.experiment.runner import run


def _text_config(**extra):
    return {
        "name": "words",
        "data": {"id": "pydoc", "params": {"test_fraction": 0.05}},
        "model": {"id": "ngram", "params": {"order": 2}},
        "regime": {"id": "replace"},
        "samples_per_generation": 20,
        "generations": 3,
        "seeds": 3,
        "metrics": ["types", "distinct_2"],
        **extra,
    }


def test_metrics_bit_identical_with_and_without_saving(tmp_path, small_config):
    plain = run(load_config(small_config), tmp_path / "plain")
    saved = run(
        load_config(small_config),
        tmp_path / "saved",
        save_generations=SaveGenerations.parse("all"),
    )
    for a, b in zip(plain.arms, saved.arms, strict=True):
        pd.testing.assert_frame_equal(a.frame, b.frame)
        left = (a.directory / "metrics.parquet").read_bytes()
        assert left == (b.directory / "metrics.parquet").read_bytes()
        assert not (a.directory / "generations").exists()


def test_arrays_saved_per_seed_and_generation_match_the_chain(tmp_path, small_config):
    """Batched Gaussian and per-seed KDE: every chosen seed and generation, nothing else;
    the saved samples' variance is the chain's recorded ``variance``."""
    result = run(
        load_config(small_config),
        tmp_path / "r",
        save_generations=SaveGenerations.parse("0,3"),
    )
    for arm in result.arms:
        folder = arm.directory / "generations"
        assert sorted(p.name for p in folder.iterdir()) == ["seed-0000", "seed-0003"]
        frame = arm.frame.set_index(["metric", "seed", "generation"])["value"]
        for seed in (0, 3):
            files = sorted((folder / f"seed-{seed:04d}").iterdir())
            assert [f.name for f in files] == [f"generation-{g:04d}.npz" for g in range(8)]
            for generation, path in enumerate(files):
                with np.load(path, allow_pickle=False) as npz:
                    samples = npz["samples"]
                    assert int(npz["seed"]) == seed and int(npz["generation"]) == generation
                assert samples.shape == (30, 1)
                # the chain measures the model fitted on these samples; the Gaussian's
                # fit is their variance (ML, ddof=0)
                if arm.name == "gauss-replace" and generation + 1 < 8:
                    fitted = frame["variance", seed, generation + 1]
                    assert samples.var() == pytest.approx(fitted, rel=1e-9)


def test_text_generation_read_back_as_text_source_and_by_diagnose(tmp_path, capsys):
    result = run(
        load_config(_text_config()),
        tmp_path / "t",
        save_generations=SaveGenerations.parse("1"),
    )
    arm = result.arms[0]
    path = generation_path(arm.directory / "generations", 1, 2, DataKind.TEXT)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 20
    assert {(r["seed"], r["generation"]) for r in rows} == {(1, 2)}
    assert all(isinstance(r["text"], str) and r["text"] for r in rows)
    # as a data source of a new run
    config = load_config(
        {
            **_text_config(seeds=1, generations=2),
            "name": "retrain",
            "data": {"id": "text", "params": {"path": str(path), "test_fraction": 0.2}},
        }
    )
    retrained = run(config, tmp_path / "again").metrics()
    assert (retrained[retrained["metric"] == "types"]["value"] > 0).all()
    # and as a side of diagnose
    first = generation_path(arm.directory / "generations", 1, 0, DataKind.TEXT)
    assert main(["diagnose", str(first), str(path), "--json", "--bootstrap", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report  # diagnose read both JSONL files


def test_datasets_format_saves_a_dataset_per_seed(tmp_path):
    datasets = pytest.importorskip("datasets")
    result = run(
        load_config(_text_config(seeds=2, generations=2)),
        tmp_path / "d",
        save_generations=SaveGenerations.parse("all", "datasets"),
    )
    folder = result.arms[0].directory / "generations" / "datasets" / "seed-0001"
    loaded = datasets.load_from_disk(str(folder))
    assert loaded.column_names == ["seed", "generation", "text"]
    assert set(loaded["generation"]) == {0, 1} and set(loaded["seed"]) == {1}
    assert len(loaded) == 40


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--save-generations", "0,x"], "--save-generations must be 'all' or seed numbers"),
        (["--save-generations", "9"], "seed 9 is not in arm"),
        (["--save-generations", "all", "--save-format", "csv"], "--save-format must be one of"),
        (["--save-generations", "--save-format", "datasets"], "--save-format datasets saves text"),
    ],
)
def test_refused_save_options_change_nothing(tmp_path, capsys, small_config, argv, hint):
    """A refused command writes nothing, also over a complete run already there."""
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**small_config, "seeds": 2, "generations": 2}))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["run", str(config), "--out", str(out), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert hint in err and len(err.splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert main(["run", str(config), "--out", str(tmp_path / "new"), "--quiet", *argv]) == 2
    assert not (tmp_path / "new").exists()


def _saved(directory):
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("generations/**/*"))
        if p.is_file()
    }


def test_saved_files_identical_serial_pooled_and_resumed(tmp_path, small_config):
    """The same files from one process, from a pool of workers, and after an interrupt."""
    config = load_config({**small_config, "generations": 4, "seeds": 3})
    saving = SaveGenerations.parse("all")
    serial = run(config, tmp_path / "serial", save_generations=saving)
    expected = _saved(serial.directory)
    assert len(expected) == 2 * 3 * 4  # arms x seeds x generations
    pooled = run(config, tmp_path / "pool", workers=2, save_generations=saving)
    assert _saved(pooled.directory) == expected

    def stop(event):
        if event.arm == "kde-accumulate" and event.seed == 1 and event.generation == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "resumed", on_generation=stop, save_generations=saving)
    again = run(config, tmp_path / "resumed", save_generations=saving)
    assert _saved(again.directory) == expected
