"""The Ray backend against a real local cluster on 127.0.0.1 (started once per module).

The cluster is started the way a user would: ``ray start --head`` with the node IP
127.0.0.1, token auth mode set the same way for the cluster and the driver, and the
sweep connects with ``--address``.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from collapselab.experiment.storage import read_metrics
from collapselab.experiment.sweep import plan_sweep, run_sweep

ray = pytest.importorskip("ray", reason="the Ray backend needs ray: pip install 'collapselab[ray]'")
psutil = pytest.importorskip("psutil", reason="finding Ray's worker processes needs psutil")

pytestmark = pytest.mark.slow

#: Both the cluster and the driver: no usage stats, the same auth mode, loopback only.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    # Ray maps 127.0.0.1 to the machine's external address unless clusters are off.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}

CONFIG = {
    "name": "r",
    "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 200}},
    "model": {"id": "gaussian"},
    "samples_per_generation": 30,
    "generations": 6,
    "seeds": 3,
    "metrics": ["variance", "tail_mass", "collapsed"],
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

#: Per-seed only, with enough work per task to kill a worker in the middle of one.
SLOW_CONFIG = {
    "name": "slow",
    "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 200}},
    "model": {"id": "kde", "params": {"bandwidth": 0.3}},
    "regime": {"id": "accumulate"},
    "samples_per_generation": 50,
    "generations": 30,
    "seeds": 4,
    "metrics": ["variance", "nll_real", "wasserstein"],
    "checkpoint_every": 1,
}


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray head on 127.0.0.1; yields (address, the `ray start` process)."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="clr", dir="/tmp")  # short: Ray's socket paths have a limit
    log = Path(temp) / "start.log"
    ray_cli = Path(sys.executable).with_name("ray")
    process = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],
        env={**os.environ, **RAY_ENV},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, which teardown ends
    )
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"ray start failed:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)
    yield f"127.0.0.1:{port}", process
    process.terminate()  # `ray start --block` stops its own processes on SIGTERM
    try:
        process.wait(timeout=30)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sweep_cli(address, root, config_path, grid, *extra, background=False):
    argv = [sys.executable, "-m", "collapselab", "sweep", str(config_path), "--root", str(root)]
    argv += ["--backend", "ray", "--address", address, "--quiet", *extra]
    for axis in grid:
        argv += ["--grid", axis]
    env = {**os.environ, **RAY_ENV}
    if background:
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def files(directory):
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("metrics.parquet"))
    }


def test_ray_sweep_is_bit_identical_to_serial(cluster, tmp_path):
    address, _ = cluster
    config_path = tmp_path / "r.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    grid = ["samples_per_generation=10,30"]
    run_sweep(plan_sweep(CONFIG, grid, root=tmp_path, out="serial"), workers=1)
    reference = files(tmp_path / "serial")
    assert len(reference) == 4
    for out, granularity in (("seeds", "auto"), ("runs", "run")):
        done = sweep_cli(
            address, tmp_path, config_path, grid, "--out", out, "--granularity", granularity
        )
        assert done.returncode == 0, done.stderr
        assert files(tmp_path / out) == reference, granularity


def test_a_worker_killed_mid_sweep_loses_and_duplicates_nothing(cluster, tmp_path):
    address, head = cluster
    config_path = tmp_path / "slow.yaml"
    config_path.write_text(yaml.safe_dump(SLOW_CONFIG))
    grid = ["samples_per_generation=40,50"]
    sweep = sweep_cli(address, tmp_path, config_path, grid, "--out", "ray", background=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and sweep.poll() is None and time.monotonic() < deadline:
        started = any((tmp_path / "ray").rglob("*.ckpt"))  # a task is past its first generation
        for proc in psutil.Process(head.pid).children(recursive=True):
            try:
                if started and "ray::execute" in " ".join(proc.cmdline()):
                    proc.send_signal(signal.SIGKILL)  # one of our cluster's workers, by pid
                    killed = proc.pid
                    break
            except psutil.Error:
                continue
        time.sleep(0.05)
    _, err = sweep.communicate(timeout=300)
    assert killed is not None, "no running Ray task was found to kill"
    assert sweep.returncode == 0, err.decode()

    run_sweep(plan_sweep(SLOW_CONFIG, grid, root=tmp_path, out="serial"), workers=1)
    reference = files(tmp_path / "serial")
    assert files(tmp_path / "ray") == reference
    for path in reference:
        frame = read_metrics(tmp_path / "ray" / path)
        sim = frame[frame.source == "simulation"]
        assert len(sim) == 4 * 30 * 3  # seeds x generations x metrics: nothing lost
        assert not sim.duplicated(["seed", "generation", "metric"]).any()  # nothing twice


def test_address_auto_joins_the_cluster_that_ray_address_names(cluster, tmp_path):
    address, _ = cluster
    config_path = tmp_path / "r.yaml"
    config_path.write_text(yaml.safe_dump({**CONFIG, "arms": CONFIG["arms"][:1]}))
    argv = [sys.executable, "-m", "collapselab", "sweep", str(config_path), "--root", str(tmp_path)]
    argv += ["--backend", "ray", "--address", "auto", "--grid", "seeds=2", "--out", "auto"]
    env = {**os.environ, **RAY_ENV, "RAY_ADDRESS": address}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_sweep(
        plan_sweep(CONFIG | {"arms": CONFIG["arms"][:1]}, ["seeds=2"], root=tmp_path, out="serial"),
        workers=1,
    )
    assert files(tmp_path / "auto") == files(tmp_path / "serial") != {}
