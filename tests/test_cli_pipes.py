"""The command line in pipes, logs and clusters: --version, logging levels, completion,
unwrapped tables and heartbeats when stdout is not a terminal, show --json/--csv,
SIGTERM, query over several roots, Ray's --address auto."""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from collapselab._version import __version__
from collapselab.cli import main
from collapselab.experiment.runner import run
from collapselab.report.runs import load
from collapselab.report.summary import summarize

#: Seven metrics with arrows: the last generation's table is wider than 80 columns.
WIDE = {
    "name": "wide",
    "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 100}},
    "model": {"id": "gaussian"},
    "samples_per_generation": 20,
    "generations": 3,
    "seeds": 2,
    "metrics": [
        "variance",
        "log_variance",
        "mean_shift",
        "nll_real",
        "wasserstein",
        "tail_mass",
        "collapsed",
    ],
    "arms": [
        {"name": "a-long-arm-name-replace"},
        {"name": "a-long-arm-name-accumulate", "regime": "accumulate"},
    ],
}

#: Per-seed (a KDE) with a checkpoint every generation: a second or two of work.
SLOW = {
    "name": "slow",
    "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 200}},
    "model": {"id": "kde", "params": {"bandwidth": 0.3}},
    "regime": {"id": "accumulate"},
    "samples_per_generation": 50,
    "generations": 40,
    "seeds": 2,
    "metrics": ["variance", "nll_real"],
    "checkpoint_every": 1,
}


def cli(*argv, stdin=None, env=None, timeout=300):
    """``python -m collapselab ARGV`` in a real process, stdout and stderr pipes."""
    command = [sys.executable, "-m", "collapselab", *map(str, argv)]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def piped(command, timeout=300):
    """A shell pipeline ``command | cat``: what a user sees through a pipe."""
    return subprocess.run(
        f"{command} | cat", shell=True, capture_output=True, text=True, timeout=timeout
    )


def write_config(tmp_path, data, name):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wide") / "wide"
    run(WIDE, out)
    return out


# --- --version, logging, completion ---------------------------------------------------


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"collapselab {__version__}"


#: One arm, two metrics: the smallest run (and report) the command line can make.
TINY = {**WIDE, "metrics": ["variance", "tail_mass"], "arms": WIDE["arms"][:1]}


def test_log_level_options_before_and_after_the_subcommand(tmp_path, capsys):
    config = write_config(tmp_path, TINY, "t.yaml")
    before = cli("-v", "run", config, "--out", tmp_path / "v1")  # a real process
    assert before.returncode == 0, before.stderr
    assert main(["run", str(config), "--out", str(tmp_path / "v2"), "--verbose"]) == 0
    after = capsys.readouterr()
    for out, err in ((before.stdout, before.stderr), after):
        # -v: the runner's debug lines, with their logger, on stderr only
        assert re.search(r"DEBUG collapselab\.experiment\.runner: a-long-arm-name-replace", err)
        assert "DEBUG" not in out and "results:" in out
    argv = ["run", str(config), "--out", str(tmp_path / "v3"), "--log-level", "warning"]
    assert main([*argv, "--heartbeat", "0.001"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no heartbeat at WARNING
    assert "headline" in out  # --log-level changes only the logs, not the results
    with pytest.raises(SystemExit) as exit_:
        main(["--log-level", "chatty", "run", str(config)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument --log-level")


def test_quiet_prints_only_the_results_path_and_no_logs(tmp_path, capsys):
    config = write_config(tmp_path, {**SLOW, "generations": 10}, "slow.yaml")
    out = tmp_path / "q"
    assert main(["run", str(config), "--out", str(out), "-q", "--heartbeat", "0.001"]) == 0
    assert capsys.readouterr() == (f"results: {out}\n", "")  # -q: warnings only, no heartbeat


def test_completion_scripts_name_every_subcommand_and_option(capsys):
    pytest.importorskip(
        "shtab", reason="completion needs shtab: pip install 'collapselab[completion]'"
    )
    scripts = {}
    for shell in ("bash", "zsh"):
        assert main(["completion", shell]) == 0
        scripts[shell] = capsys.readouterr().out
        for word in ("sweep", "query", "verdict", "--heartbeat", "--log-level", "--json"):
            assert word in scripts[shell], (shell, word)
    if shutil.which("bash"):
        parsed = subprocess.run(["bash", "-n"], input=scripts["bash"], text=True)
        assert parsed.returncode == 0  # the bash script is valid bash


def test_completion_without_shtab_is_one_line_naming_the_extra():
    code = (
        "import sys; sys.modules['shtab'] = None\n"  # as if it were not installed
        "from collapselab.cli import main\n"
        "raise SystemExit(main(['completion', 'bash']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: shell completion needs"), lines
    assert 'pip install "collapselab[completion]"' in lines[0]


# --- pipes: tables at full width, heartbeats instead of a bar ------------------------


def test_show_last_through_a_pipe_keeps_every_name_whole(wide_run):
    done = piped(f"{sys.executable} -m collapselab show --last {wide_run}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if "a-long-arm-name" not in line and "variance" in line)
    assert len(header) > 80  # wider than a terminal's 80 columns, not wrapped to fit
    for name in ("variance ≈", "log_variance ≈", "mean_shift ↓", "wasserstein ↓", "tail_mass ≈"):
        assert name in header, (name, header)
    key = next(i for i, line in enumerate(lines) if line.startswith("↑ higher is healthier"))
    assert lines[key].endswith("(declared by each metric)")  # the key on one line
    table = lines[:key]  # the last generation's table (the verdicts follow the key)
    for arm in ("a-long-arm-name-replace", "a-long-arm-name-accumulate"):
        assert sum(arm in line for line in table) == 1  # one row each, not folded


def test_show_through_a_pipe_does_not_wrap_cells(wide_run):
    done = piped(f"{sys.executable} -m collapselab show {wide_run}")
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("│")]
    assert table
    for line in table:
        assert line.count("[") == line.count("]"), line  # a band never split over two lines
        cells = [c.strip() for c in line.strip("│").split("│")]
        assert cells[1], line  # every row has its generation: no continuation lines


def test_verdict_and_presets_through_a_pipe_are_whole(wide_run):
    done = piped(f"{sys.executable} -m collapselab verdict {wide_run} --matrix")
    assert done.returncode == 0, done.stderr
    names = ["rise", "diverges", "vs real", "diversity", "tails", "mode seeking", "scaling"]
    assert any(all(name in line for name in names) for line in done.stdout.splitlines())
    done = piped(f"{sys.executable} -m collapselab presets")
    full = piped(f"{sys.executable} -m collapselab presets --full")
    assert done.returncode == 0, done.stderr
    assert done.stdout == full.stdout  # descriptions whole, not cut to a terminal's width
    assert max(map(len, done.stdout.splitlines())) > 120


def test_run_through_a_pipe_prints_heartbeats_not_a_bar(tmp_path):
    config = write_config(tmp_path, SLOW, "slow.yaml")
    out = tmp_path / "beat"
    done = piped(f"{sys.executable} -m collapselab run {config} --out {out} --heartbeat 0.05 2>&1")
    assert done.returncode == 0, done.stdout
    beats = re.findall(r"INFO: slow: (\d+)/80 chain-generations \((\d+)%\)", done.stdout)
    assert len(beats) >= 2, done.stdout
    counts = [int(n) for n, _ in beats]
    assert counts == sorted(counts) and counts[-1] == 80  # the last line: the arm done
    assert "(done)" in done.stdout
    assert "\r" not in done.stdout and "\x1b[" not in done.stdout  # no bar, no escapes
    assert f"results: {out}" in done.stdout


def test_heartbeat_from_python_logs_through_logging(tmp_path, caplog):
    import logging

    out = tmp_path / "py"
    caplog.set_level(logging.INFO, logger="collapselab")
    run(SLOW, out, heartbeat=0.02)
    beats = [r.getMessage() for r in caplog.records if r.name.endswith("observers")]
    assert len(beats) >= 2 and beats[-1].endswith(" s (done)"), beats
    assert beats[-1].startswith("slow: 80/80 chain-generations (100%)")
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name.endswith("observers"))


def test_a_short_run_into_a_pipe_logs_no_heartbeat_by_default(tmp_path):
    config = write_config(tmp_path, TINY, "t.yaml")
    done = cli("run", config, "--out", tmp_path / "short")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # done within the first 30 s: nothing to say
    assert "headline" in done.stdout


def test_heartbeat_must_be_positive(tmp_path, capsys):
    config = write_config(tmp_path, SLOW, "slow.yaml")
    assert main(["run", str(config), "--out", str(tmp_path / "x"), "--heartbeat", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --heartbeat must be > 0") and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_a_sweep_logs_a_line_per_finished_task(tmp_path, capsys):
    config = write_config(tmp_path, {**WIDE, "arms": WIDE["arms"][:1]}, "w.yaml")
    argv = ["sweep", str(config), "--grid", "seeds=2,3", "--root", str(tmp_path), "--workers", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(
        re.search(r"INFO: sweep wide: seeds-\d done \(\d of 2\)$", line) for line in lines
    ), err
    assert "done" not in out  # logs on stderr, results on stdout
    assert main([*argv, "-q"]) == 0  # complete: nothing run, and -q logs nothing
    assert capsys.readouterr() == (f"results: {tmp_path / 'wide'}\n", "")


# --- show --json / --csv ----------------------------------------------------------------


def test_show_json_and_csv_hold_the_tables_data(wide_run, capsys):
    assert main(["show", str(wide_run), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert main(["show", str(wide_run), "--csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    rows = pd.DataFrame(document["rows"])
    assert list(table.columns) == list(rows.columns)
    assert len(table) == len(rows) == 2 * len(WIDE["metrics"]) * WIDE["generations"]
    pd.testing.assert_frame_equal(table, rows, check_dtype=False)
    run_ = load(wide_run)
    for arm in run_.arms:
        expected = summarize(arm.frame)
        got = rows[rows.arm == arm.name]
        variance = expected[(expected.metric == "variance") & (expected.generation == 2)]
        mine = got[(got.metric == "variance") & (got.generation == 2)]
        assert mine["median"].iloc[0] == variance["median"].iloc[0]
        assert mine["sem"].iloc[0] == variance["sem"].iloc[0]
        assert mine["theory"].iloc[0] == variance["theory"].iloc[0]  # gaussian: a closed form
    assert set(rows.direction) <= {"higher", "lower", "target", "neutral"}
    assert {a["arm"] for a in document["verdicts"]["arms"]} == {a["name"] for a in WIDE["arms"]}
    assert all(
        len(a["rows"]) == len(document["verdicts"]["definitions"])
        for a in document["verdicts"]["arms"]
    )
    assert main(["show", str(wide_run), "--csv", "--last"]) == 0
    last = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(last.generation) == {WIDE["generations"] - 1}


# --- SIGTERM --------------------------------------------------------------------------


def test_sigterm_marks_run_and_arm_interrupted_and_resume_is_bit_identical(tmp_path):
    config = write_config(tmp_path, SLOW, "slow.yaml")
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "collapselab", "run", str(config), "--out", str(out), "-q"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(out.rglob("*.ckpt")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err.startswith("interrupted:") and "Traceback" not in err, err
    for manifest in (out / "manifest.json", out / "slow" / "manifest.json"):
        assert json.loads(manifest.read_text())["status"] == "interrupted", manifest
    assert not (out / "slow" / "metrics.parquet").exists()

    resumed = cli("run", config, "--out", out, "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "slow" / "manifest.json").read_text())["resumed"] is True
    fresh = tmp_path / "fresh"
    run(yaml.safe_load(config.read_text()), fresh)
    assert (out / "slow" / "metrics.parquet").read_bytes() == (
        fresh / "slow" / "metrics.parquet"
    ).read_bytes()


# --- query over several roots ---------------------------------------------------------


@pytest.fixture(scope="module")
def two_roots(tmp_path_factory, wide_run):
    pytest.importorskip("duckdb", reason="collapselab query needs duckdb")
    first = tmp_path_factory.mktemp("root-a")
    second = tmp_path_factory.mktemp("root-b")
    shutil.copytree(wide_run, first / "wide")
    run(
        {**WIDE, "name": "other", "generations": 5, "arms": WIDE["arms"][:1]},
        second / "other",
    )
    return first, second


def test_query_reads_several_roots_with_a_root_column(two_roots, capsys):
    first, second = two_roots
    argv = ["query", "SELECT root, run_dir, name, arm, run_id FROM runs ORDER BY ALL"]
    argv += ["--root", str(first), "--root", str(second), "--format", "json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "root": str(first),
            "run_dir": "wide/a-long-arm-name-accumulate",
            "name": "wide",
            "arm": "a-long-arm-name-accumulate",
            "run_id": "a-long-arm-name-accumulate",
        },
        {
            "root": str(first),
            "run_dir": "wide/a-long-arm-name-replace",
            "name": "wide",
            "arm": "a-long-arm-name-replace",
            "run_id": "a-long-arm-name-replace",
        },
        {
            "root": str(second),
            "run_dir": "other/a-long-arm-name-replace",
            "name": "other",
            "arm": "a-long-arm-name-replace",
            "run_id": "a-long-arm-name-replace",
        },
    ]
    sql = "SELECT root, count(*) AS n FROM metrics GROUP BY root ORDER BY root"
    assert main(["query", sql, "--root", str(first), "--root", str(second), "--format", "csv"]) == 0
    counts = pd.read_csv(io.StringIO(capsys.readouterr().out))
    expected = {
        str(first): sum(len(a.frame) for a in load(first / "wide").arms),
        str(second): sum(len(a.frame) for a in load(second / "other").arms),
    }
    assert dict(zip(counts["root"], counts["n"], strict=True)) == expected


def test_last_generation_view_is_each_arms_last_generation(two_roots):
    from collapselab.query import query

    first, second = two_roots
    last = query("SELECT * FROM last_generation", [first, second])
    for root, folder in ((first, "wide"), (second, "other")):
        for arm in load(root / folder).arms:
            mine = last[(last["root"] == str(root)) & (last["run_dir"] == f"{folder}/{arm.name}")]
            final = arm.frame["generation"][arm.frame["source"] == "simulation"].max()
            expected = arm.frame[arm.frame["generation"] == final]
            assert set(mine["generation"]) == {final}
            assert len(mine) == len(expected)
            assert sorted(mine["value"]) == sorted(expected["value"])


def test_query_refuses_a_root_twice_or_inside_another(two_roots, capsys):
    first, _ = two_roots
    for extra in ([first, first], [first, first / "wide"]):
        argv = ["query", "SELECT 1", *[a for r in extra for a in ("--root", str(r))]]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: results root") and "count twice" in err
        assert len(err.strip().splitlines()) == 1


# --- Ray: --address auto ----------------------------------------------------------------


def test_sweep_help_documents_address_auto():
    done = cli("sweep", "--help")
    assert done.returncode == 0
    assert "auto" in " ".join(done.stdout.split()).split("--address", 1)[1][:400]


def test_address_auto_names_the_unreachable_cluster_in_one_line(tmp_path):
    pytest.importorskip("ray", reason="the Ray backend needs ray: pip install 'collapselab[ray]'")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path, {**WIDE, "arms": WIDE["arms"][:1]}, "w.yaml")
    done = cli(
        "sweep",
        config,
        "--grid",
        "seeds=2,3",
        "--root",
        tmp_path / "root",
        "--backend",
        "ray",
        "--address",
        "auto",
        env={"RAY_ADDRESS": f"127.0.0.1:{port}"},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: cannot connect to --address 127.0.0.1:{port}"
    )
    assert not list((tmp_path / "root").rglob("*.json"))  # refused before any manifest
