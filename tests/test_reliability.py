"""Reliability under faults: kill -9 at random points, corrupt results and checkpoints,
a full disk and an unwritable output folder. Every recovery is compared byte for byte
with an uninterrupted run."""

import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml

import collapselab as cl
from collapselab.cli import main
from collapselab.experiment import load_config
from collapselab.experiment.storage import MAGIC, read_json, read_metrics
from collapselab.experiment.sweep import plan_sweep, run_sweep

#: A batched Gaussian arm and a per-seed KDE arm whose pool grows (accumulate).
CONFIG = {
    "name": "faults",
    "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 200}},
    "model": {"id": "gaussian"},
    "samples_per_generation": 40,
    "generations": 12,
    "seeds": 4,
    "metrics": ["variance", "tail_mass", "wasserstein", "collapsed"],
    "checkpoint_every": 1,
    "arms": [
        {"name": "gauss"},
        {
            "name": "kde",
            "model": {"id": "kde", "params": {"bandwidth": 0.3}},
            "regime": "accumulate",
        },
    ],
}
GRID = ["samples_per_generation=20,40"]
#: Kill points per test run (half of them runs, half sweeps); each costs two process starts.
TRIALS = 6


def files(directory):
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("metrics.parquet"))
    }


def assert_complete(directory, expected_files):
    """Every generation of every seed and metric, exactly once."""
    found = files(directory)
    assert len(found) == expected_files
    for path in found:
        frame = read_metrics(directory / path)
        sim = frame[frame.source == "simulation"]
        config = yaml.safe_load((directory / path).with_name("config.yaml").read_text())
        rows = config["seeds"] * config["generations"] * len(config["metrics"])
        assert len(sim) == rows
        assert not sim.duplicated(["seed", "generation", "metric"]).any()


# ---------------------------------------------------------------------------
# kill -9 at random points, then the same command again
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun_is_bit_identical(tmp_path):
    config_path = tmp_path / "faults.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    cl.run(load_config(CONFIG), tmp_path / "ref-run", report=False)
    run_sweep(plan_sweep(CONFIG, GRID, root=tmp_path, out="ref-sweep"), workers=1)
    reference = {"run": files(tmp_path / "ref-run"), "sweep": files(tmp_path / "ref-sweep")}

    def command(kind, out):
        if kind == "run":  # the runner in its own process (the CLI adds only a report)
            code = (
                "import sys, collapselab as cl; from collapselab.experiment import load_config; "
                "cl.run(load_config(sys.argv[1]), sys.argv[2], report=False)"
            )
            return [sys.executable, "-c", code, str(config_path), str(tmp_path / out)]
        options = ["--root", str(tmp_path), "--out", out, "--workers", "2", "--quiet"]
        return [sys.executable, "-m", "collapselab", "sweep", str(config_path), "--grid", GRID[0], *options]  # fmt: skip

    def started(out):  # past the imports: the first checkpoint is on disk
        return any((tmp_path / out).rglob("*.ckpt"))

    def launch(kind, out):
        # Its own process group: kill -9 hits the sweep and its pool workers, as a
        # killed job would, and no orphan keeps writing after the test.
        process = subprocess.Popen(command(kind, out), start_new_session=True)
        while not started(out) and process.poll() is None:
            time.sleep(0.005)
        return process

    # How long the work runs once started, per command, to draw kill times from.
    work = {}
    for kind in ("run", "sweep"):
        process = launch(kind, f"t-{kind}")
        begin = time.monotonic()
        assert process.wait(timeout=300) == 0
        work[kind] = time.monotonic() - begin

    rng = random.Random(20240607)
    killed_mid_run = resumed = 0
    for trial in range(TRIALS):
        kind = ("run", "sweep")[trial % 2]
        out = f"trial-{trial}"
        process = launch(kind, out)
        time.sleep(rng.uniform(0, work[kind]))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            killed_mid_run += 1
        process.wait(timeout=60)
        # Progress left for the rerun: checkpoints, or arms already finished (whose
        # checkpoints were replaced by their results).
        resumed += started(out) or any((tmp_path / out).rglob("metrics.parquet"))
        done = subprocess.run(command(kind, out), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (trial, done.stderr)
        assert files(tmp_path / out) == reference[kind], f"trial {trial} ({kind}) differs"
        assert_complete(tmp_path / out, len(reference[kind]))
    print(f"kill -9 trials: {TRIALS}, killed mid-run: {killed_mid_run}, resumed: {resumed}")
    assert killed_mid_run >= TRIALS - 2  # kill times fall inside the work, so nearly all land
    # launch() returns only once a checkpoint is on disk, so every trial leaves
    # progress behind: each rerun resumes rather than starting over
    assert resumed == TRIALS


# ---------------------------------------------------------------------------
# Corrupt results and checkpoints are detected and redone
# ---------------------------------------------------------------------------


def test_flipped_bytes_in_results_and_checkpoints_are_redone(tmp_path):
    sweep = plan_sweep(CONFIG, GRID, root=tmp_path, out="s")
    run_sweep(sweep, workers=1)
    reference = files(tmp_path / "s")
    first, second = sweep.points

    # A byte flipped inside a completed arm's Parquet pages (Parquet alone may miss it).
    target = tmp_path / "s" / first.name / "kde" / "metrics.parquet"
    blob = bytearray(target.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    target.write_bytes(bytes(blob))

    # An interrupted point whose checkpoint then has a byte flipped in its payload.
    point_dir = tmp_path / "s" / second.name
    for path in point_dir.rglob("*"):
        if path.is_file():
            path.unlink()

    def interrupt(event):
        arm, seed, generation = event.arm, event.seed, event.generation
        if (arm, seed, generation) == ("kde", 1, 6):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cl.run(second.config, point_dir, on_generation=interrupt, report=False)
    checkpoint = point_dir / "kde" / "checkpoints" / "seed-00001.ckpt"
    blob = bytearray(checkpoint.read_bytes())
    blob[len(MAGIC) + 80] ^= 0x01
    checkpoint.write_bytes(bytes(blob))

    again = run_sweep(plan_sweep(CONFIG, GRID, root=tmp_path, out="s"), workers=1)
    assert again.ran == [first.name, second.name] and not again.skipped
    assert files(tmp_path / "s") == reference


# ---------------------------------------------------------------------------
# Full disk, unwritable folder: a clear error, earlier results intact
# ---------------------------------------------------------------------------


def _grow(tmp_path):
    """A complete 2-point sweep, then the command that grows it by a third point."""
    config_path = tmp_path / "faults.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    argv = ["sweep", str(config_path), "--root", str(tmp_path), "--workers", "1", "--quiet"]
    assert main([*argv, "--grid", GRID[0]]) == 0
    return [*argv, "--grid", "samples_per_generation=20,40,60"]


def test_a_full_disk_is_a_clear_error_and_keeps_earlier_results(tmp_path, monkeypatch, capsys):
    grow = _grow(tmp_path)
    before = files(tmp_path / "faults")
    new_point = str(tmp_path / "faults" / "samples_per_generation-60")
    real_fsync = os.fsync

    def full_disk(fd):  # the disk is full for everything the new point writes
        if os.readlink(f"/proc/self/fd/{fd}").startswith(new_point):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    capsys.readouterr()
    assert main(grow) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write")
    assert "No space left on device" in err[0]
    assert files(tmp_path / "faults") == before  # nothing earlier lost or changed
    assert read_json(tmp_path / "faults" / "sweep.json")["status"] == "failed"
    leftovers = [p for p in (tmp_path / "faults").rglob("*.tmp")]
    assert leftovers == []  # no half-written temporary files left behind

    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: the same command finishes
    assert main(grow) == 0
    grown = files(tmp_path / "faults")
    assert {k: v for k, v in grown.items() if k in before} == before and len(grown) == 6


def test_an_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    grow = _grow(tmp_path)
    before = files(tmp_path / "faults")
    # Root ignores permission bits, so block the new point's folder with a file.
    (tmp_path / "faults" / "samples_per_generation-60").write_text("not a folder")
    capsys.readouterr()
    assert main(grow) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write"), err
    assert files(tmp_path / "faults") == before

    blocker = tmp_path / "file"
    blocker.write_text("x")
    config_path = tmp_path / "faults.yaml"
    code = main(["sweep", str(config_path), "--grid", GRID[0], "--root", str(blocker / "root")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot write" in err[0]


def test_a_unwritable_folder_by_permission_when_not_root(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits; the file-blocker test covers this case")
    grow = _grow(tmp_path)
    before = files(tmp_path / "faults")
    (tmp_path / "faults").chmod(0o500)
    try:
        assert main(grow) == 2
    finally:
        (tmp_path / "faults").chmod(0o700)
    assert "cannot write" in capsys.readouterr().err
    assert files(tmp_path / "faults") == before
