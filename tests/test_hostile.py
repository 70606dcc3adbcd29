"""Hostile input and damaged folders (issue 14): one test per class of fault.

Every refusal must exit 2 with exactly one line on stderr, no traceback, and leave
the folder's bytes as they were. Most cases call ``collapselab.cli.main`` in this
process; signals, address-space limits and orphaned workers need real subprocesses.
"""

import contextlib
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from collapselab.cli import main
from collapselab.experiment.storage import MAGIC, FolderLock

BASE = {
    "name": "base",
    "data": {"id": "gaussian", "params": {"dim": 1, "n_test": 50}},
    "model": "gaussian",
    "samples_per_generation": 20,
    "generations": 3,
    "seeds": 2,
    "metrics": ["variance"],
    "checkpoint_every": 1,
}
TWO = {**BASE, "name": "two", "arms": [{"name": "rep"}, {"name": "acc", "regime": "accumulate"}]}
#: A per-seed arm (KDE) with several generations, for interrupted runs.
SEEDS = {**BASE, "name": "seeds", "model": "kde", "batched": "no", "generations": 5, "seeds": 3}


@pytest.fixture(autouse=True)
def own_key(monkeypatch, tmp_path):
    """A checkpoint key for this test alone (never the user's)."""
    monkeypatch.setenv("COLLAPSELAB_CHECKPOINT_KEY", "11" * 32)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def tree(folder):
    """Every file's bytes (and every folder) under ``folder``: what must not change."""
    folder = Path(folder)
    if not folder.exists():
        return None
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(folder.rglob("*"))
    }


def write_config(tmp_path, config, name="c.yaml"):
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return str(path)


def refused(capsys, argv, *watched, match=None):
    """Run ``argv``; assert exit 2, one stderr line, no traceback, ``watched`` unchanged."""
    before = [tree(w) for w in watched]
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors (one line, exit 2, as ours)
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in err
    for folder, snapshot in zip(watched, before, strict=True):
        assert tree(folder) == snapshot, f"{folder} changed"
    if match is not None:
        assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Complete runs of BASE and TWO, copied by each test that changes them."""
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLLAPSELAB_CHECKPOINT_KEY", "11" * 32)
        for config in (BASE, TWO):
            path = root / f"{config['name']}.yaml"
            path.write_text(yaml.safe_dump(config))
            assert main(["run", str(path), "--out", str(root / config["name"]), "--quiet"]) == 0
    return root


def copy_of(finished, name, tmp_path):
    target = tmp_path / name
    shutil.copytree(finished / name, target)
    return target


# ---------------------------------------------------------------------------
# The YAML reader is bounded
# ---------------------------------------------------------------------------

LAUGHS = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LAUGHS + yaml.safe_dump(BASE), "expand to more than"),
        ("name: r\nloop: &a [*a]\n", "recursive alias"),
        ("x: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than"),
        ("x: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n", "nested deeper than"),
        (yaml.safe_dump(BASE) + "seeds: 3\n", "duplicate key 'seeds'"),
        ("name: x\ndata: {id: gaussian, id: kde}\n", "duplicate key 'id'"),
        (b"name: \xff\xfe\n", "not UTF-8"),
    ],
    ids=["alias-bomb", "recursive", "deep-list", "deep-map", "duplicate", "duplicate-flow", "utf8"],
)
def test_the_yaml_reader_refuses_bombs_recursion_depth_and_duplicates(
    tmp_path, capsys, text, message
):
    path = tmp_path / "c.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out"
    start = time.monotonic()
    refused(capsys, ["run", path, "--out", out], tmp_path, match=message)
    assert not out.exists()
    assert time.monotonic() - start < 30  # refused, not expanded (a generous bound)


def test_set_and_grid_values_go_through_the_same_reader(tmp_path, capsys):
    config = write_config(tmp_path, BASE)
    refused(capsys, ["run", config, "--set", "description=" + "[" * 5000], tmp_path)
    refused(capsys, ["run", config, "--set", "data.params={dim: 1, dim: 2}"], tmp_path)
    refused(capsys, ["sweep", config, "--grid", "seeds=" + "[" * 5000, "--root", tmp_path])


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "huge"])
def test_a_config_is_a_bounded_regular_file(tmp_path, capsys, kind):
    path = (
        {"fifo": tmp_path / "c.fifo", "dev-zero": Path("/dev/zero"), "folder": tmp_path}[kind]
        if kind != "huge"
        else tmp_path / "huge.yaml"
    )
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "huge":
        path.write_text(yaml.safe_dump(BASE) + "# " + "x" * (5 << 20) + "\n")
    with _alarm(20):
        refused(capsys, ["run", path, "--out", tmp_path / "out"], tmp_path)


@contextlib.contextmanager
def _alarm(seconds):
    """Fail instead of hanging if a read blocks (a FIFO) after a regression."""

    def expire(*_):
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------
# Sizes and memory: refused before anything is allocated (under an address-space limit)
# ---------------------------------------------------------------------------

MEMORY_CASES = {
    "seeds": ["--set", "seeds=1e9"],
    "cli-seeds": ["--seeds", str(10**12)],
    "generations": ["--generations", str(10**12)],
    "samples": ["--set", "samples_per_generation=1e12"],
    "samples-int": ["--set", "samples_per_generation=1000000000"],
    "real-samples": ["--set", "real_samples=1000000000"],
    "n-test": ["--set", "data.params.n_test=1000000000000"],
    "dim-by-samples": ["--set", "data.params.dim=100000", "--set", "samples_per_generation=100000"],
    "zipf-vocabulary": [
        "--set",
        "data={id: zipf, params: {vocabulary: 1000000000}}",
        "--set",
        "model=categorical",
        "--set",
        "metrics=[types]",
    ],
    "oversample": [
        "--set",
        "curators=[{id: likelihood-filter, params: {keep: 0.5}}]",
        "--set",
        "oversample=1e12",
    ],
    "oversample-inf": [
        "--set",
        "curators=[{id: likelihood-filter}]",
        "--set",
        "oversample=.inf",
    ],
}


@pytest.mark.slow
def test_absurd_sizes_are_refused_before_allocating_under_an_address_space_limit(tmp_path):
    """All cases in one subprocess limited to 3 GiB of address space: a regression that
    allocates fails there (MemoryError, exit 2 saying 'out of memory') instead of
    taking the machine, and the test sees it was not the estimate that refused."""
    config = write_config(tmp_path, BASE)
    script = textwrap.dedent(
        """
        import contextlib, io, json, resource, sys
        limit = 3 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from collapselab.cli import main
        results = {}
        for name, argv in json.loads(sys.argv[1]).items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(argv)
            results[name] = [code, err.getvalue()]
        print(json.dumps(results))
        """
    )
    cases = {
        name: ["run", config, "--out", str(tmp_path / name), "--quiet", *extra]
        for name, extra in MEMORY_CASES.items()
    }
    cases["bootstrap"] = ["diagnose", config, config, "--bootstrap", "100000000"]
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (code, err) in results.items():
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, (name, err)
        assert "out of memory" not in err and "Traceback" not in err, (name, err)
        assert re.search(r"needs? about|less than or equal|finite", err), (name, err)
        assert not (tmp_path / name).exists(), name


def test_the_memory_estimate_names_the_field_and_has_an_override(tmp_path, capsys):
    config = write_config(tmp_path, BASE)
    line = refused(
        capsys,
        ["run", config, "--out", tmp_path / "o", "--max-memory", "1M", "--set", "seeds=20000"],
        tmp_path,
    )
    assert "config field 'seeds'" in line and "needs about" in line and "--max-memory" in line
    capsys.readouterr()
    assert (
        main(["run", config, "--out", str(tmp_path / "o"), "--quiet", "--max-memory", "off"]) == 0
    )
    refused(capsys, ["run", config, "--max-memory", "lots"], tmp_path, match="--max-memory")


def test_workers_are_refused_above_a_few_per_cpu_and_capped_at_the_seeds(
    tmp_path, capsys, monkeypatch
):
    config = write_config(tmp_path, {**SEEDS, "seeds": 2})
    refused(capsys, ["run", config, "--out", tmp_path / "o", "--workers", "10000"], tmp_path)
    refused(capsys, ["run", config, "--out", tmp_path / "o", "--workers", "0"], tmp_path)
    refused(capsys, ["sweep", config, "--grid", "seeds=1,2", "--workers", "10000"], tmp_path)
    import concurrent.futures

    from collapselab.experiment import runner

    started = []
    real_pool = concurrent.futures.ProcessPoolExecutor

    def pool(*args, **kwargs):
        started.append(kwargs["max_workers"])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(runner, "ProcessPoolExecutor", pool)
    workers = min(8, 4 * (len(os.sched_getaffinity(0))))
    assert (
        main(["run", config, "--out", str(tmp_path / "o"), "--quiet", "--workers", str(workers)])
        == 0
    )
    assert started == [2]  # two seeds: two processes, whatever --workers said


# ---------------------------------------------------------------------------
# Special files: only regular files are read, with a size check
# ---------------------------------------------------------------------------


def _text_config(tmp_path, path, **params):
    return write_config(
        tmp_path,
        {
            **BASE,
            "name": "text",
            "data": {"id": "text", "params": {"path": str(path), "unit": "line", **params}},
            "model": {"id": "ngram", "params": {"order": 1}},
            "metrics": ["types"],
        },
        name="text.yaml",
    )


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "fifo-in-folder", "too-large"])
def test_only_regular_files_are_read_as_text(tmp_path, capsys, monkeypatch, kind):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("one two\nthree four\n")
    target = {"fifo": docs / "x.fifo", "dev-zero": Path("/dev/zero"), "fifo-in-folder": docs}
    target = target.get(kind, docs / "big.txt")
    if kind in ("fifo", "fifo-in-folder"):
        os.mkfifo(docs / ("x.fifo" if kind == "fifo" else "b.txt"))
    if kind == "too-large":
        (docs / "big.txt").write_text("word " * 400_000)  # 2 MB
        monkeypatch.setenv("COLLAPSELAB_MAX_MEMORY", "10M")  # 1.25 MB of text at most
    config = _text_config(tmp_path, target)
    out = tmp_path / "out"
    with _alarm(30):
        refused(capsys, ["run", config, "--out", out], docs, match="config field 'data'")
        refused(capsys, ["diagnose", docs / "a.txt", target], docs)
    assert not out.exists()


def test_a_streamed_corpus_is_bounded_by_its_vocabulary(tmp_path, capsys, monkeypatch):
    # A JSONL file is streamed, so its size is not bounded; its distinct words are.
    monkeypatch.setenv("COLLAPSELAB_MAX_MEMORY", "off")  # restored after --max-memory sets it
    docs = tmp_path / "docs"
    docs.mkdir()
    lines = (json.dumps({"text": " ".join(f"w{i}x{j}" for j in range(50))}) for i in range(400))
    (docs / "many.jsonl").write_text("\n".join(lines), encoding="utf-8")
    line = refused(
        capsys, ["diagnose", docs / "many.jsonl", docs / "many.jsonl", "--max-memory", "4M"], docs
    )
    assert "distinct words" in line and "--max-memory" in line


# ---------------------------------------------------------------------------
# A refused run leaves the folder as it was; a complete run, rerun, writes nothing
# ---------------------------------------------------------------------------


def test_another_config_into_a_finished_run_changes_no_byte(finished, tmp_path, capsys):
    folder = copy_of(finished, "two", tmp_path)
    other = write_config(tmp_path, {**TWO, "seeds": 3})
    refused(capsys, ["run", other, "--out", folder], folder, match="different config")
    subset = write_config(tmp_path, {**TWO, "arms": [{"name": "rep"}]}, name="subset.yaml")
    refused(capsys, ["run", subset, "--out", folder], folder, match="holds arm 'acc'")
    # the refusals left a folder that shows every arm, as before
    capsys.readouterr()
    assert main(["show", str(folder), "--last"]) == 0
    shown = capsys.readouterr().out
    assert "rep" in shown and "acc" in shown


def test_a_complete_run_rerun_writes_nothing(finished, tmp_path, capsys):
    folder = copy_of(finished, "two", tmp_path)
    before = tree(folder)
    for path in [folder, *folder.rglob("*")]:  # as a read-only disk would be
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        config = write_config(tmp_path, TWO)
        assert main(["run", config, "--out", str(folder), "--quiet"]) == 0
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    assert tree(folder) == before


@pytest.mark.parametrize("out", ["", "."])
def test_an_empty_or_current_output_folder_is_refused(tmp_path, capsys, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("mine: true\n")
    config = write_config(tmp_path, BASE, name="base.yaml")
    refused(capsys, ["run", config, "--out", out], tmp_path)


def test_a_folder_of_other_files_is_refused(tmp_path, capsys):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\begin{document}")
    refused(capsys, ["run", write_config(tmp_path, BASE), "--out", folder], folder)


@pytest.mark.parametrize(
    "name", ["config.yaml", "manifest.json", "report.html", "figures", "checkpoints", "Figures"]
)
def test_arm_names_that_are_the_folders_own_files_are_refused(tmp_path, capsys, name):
    out = tmp_path / "out"
    config = write_config(tmp_path, {**BASE, "arms": [{"name": name}, {"name": "ok"}]})
    refused(capsys, ["run", config, "--out", out], match="arms.0.name")
    single = write_config(tmp_path, {**BASE, "name": name}, name="single.yaml")
    refused(capsys, ["run", single, "--out", out], match="'name'")
    assert not out.exists()


def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "out"
    config = write_config(tmp_path, BASE)
    with FolderLock(out) as lock:
        lock.claim()
        line = refused(capsys, ["run", config, "--out", out], out, match="in use by another run")
        assert f"pid {os.getpid()}" in line
    assert main(["run", config, "--out", str(out), "--quiet"]) == 0  # released


def test_a_run_and_a_sweep_never_share_a_folder(tmp_path, capsys):
    """Issue 12: `run phase-gaussian` and `sweep phase-gaussian` default to the same folder."""
    config = write_config(tmp_path, BASE)
    assert main(["sweep", config, "--grid", "seeds=1,2", "--root", str(tmp_path), "--quiet"]) == 0
    sweep = tmp_path / "base"
    refused(capsys, ["run", config, "--out", sweep], sweep, match="sweep")
    assert main(["run", config, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    refused(
        capsys,
        ["sweep", config, "--grid", "seeds=1,2", "--root", tmp_path, "--out", "run"],
        tmp_path / "run",
        match="holds a run",
    )


# ---------------------------------------------------------------------------
# Data identity
# ---------------------------------------------------------------------------


def test_edited_data_are_refused_after_a_complete_run_and_redone_with_overwrite(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} with word{i % 7}" for i in range(40)))
    config = _text_config(tmp_path, corpus)
    out = tmp_path / "out"
    assert main(["run", config, "--out", str(out), "--quiet"]) == 0
    corpus.write_text(corpus.read_text().replace("word3", "changed"))
    refused(capsys, ["run", config, "--out", out], out, match="changed since")
    assert main(["run", config, "--out", str(out), "--quiet", "--overwrite"]) == 0
    manifest = json.loads((out / "text" / "manifest.json").read_text())
    digest = hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert manifest["data_files"] == {str(corpus): digest}


def test_edited_data_between_an_interrupt_and_its_resume_are_refused(tmp_path, capsys):
    import collapselab as cl
    from collapselab.experiment import load_config

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} with word{i % 7}" for i in range(40)))
    config = _text_config(tmp_path, corpus)
    data = yaml.safe_load(Path(config).read_text()) | {"generations": 4, "seeds": 2}
    out = tmp_path / "out"

    def stop(event):
        if event.seed == 1 and event.generation == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cl.run(load_config(data), out, on_generation=stop, report=False)
    corpus.write_text(corpus.read_text() + "\none more line")
    refused(capsys, ["run", write_config(tmp_path, data), "--out", out], out, match="changed")


# ---------------------------------------------------------------------------
# Checkpoints are authenticated and bound to their chain; damaged parts recompute
# ---------------------------------------------------------------------------


def _interrupted(tmp_path, name="run", config=SEEDS):
    import collapselab as cl
    from collapselab.experiment import load_config

    def stop(event):
        if event.seed == 2 and event.generation == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cl.run(load_config(config), tmp_path / name, on_generation=stop, report=False)
    return tmp_path / name


@pytest.fixture
def clean_seeds(tmp_path):
    import collapselab as cl
    from collapselab.experiment import load_config

    cl.run(load_config(SEEDS), tmp_path / "clean", report=False)
    arm = tmp_path / "clean" / "seeds"
    return {f: (arm / f).read_bytes() for f in ("metrics.parquet", "snapshots.npz")}


def _resumed(tmp_path, folder, seen=None):
    import collapselab as cl
    from collapselab.experiment import load_config

    hook = (lambda e: seen.append((e.seed, e.generation))) if seen is not None else None
    cl.run(load_config(SEEDS), folder, on_generation=hook, report=False)
    arm = folder / "seeds"
    return {f: (arm / f).read_bytes() for f in ("metrics.parquet", "snapshots.npz")}


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path(self.marker).touch, ())


def test_a_crafted_checkpoint_is_never_unpickled(tmp_path, clean_seeds):
    folder = _interrupted(tmp_path)
    marker = tmp_path / "PWNED"
    checkpoint = folder / "seeds" / "checkpoints" / "seed-00000.ckpt"
    header = checkpoint.read_bytes()[len(MAGIC) :].partition(b"\n")[0]
    payload = pickle.dumps({"x": Evil(marker)})
    # a valid SHA-256 of the payload in the MAC's place, as the issue's exploit had
    checkpoint.write_bytes(
        MAGIC + header + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    )
    assert _resumed(tmp_path, folder) == clean_seeds
    assert not marker.exists()


def test_a_checkpoint_of_another_key_or_seed_is_recomputed(tmp_path, clean_seeds, monkeypatch):
    folder = _interrupted(tmp_path)
    checkpoints = folder / "seeds" / "checkpoints"
    shutil.copy(checkpoints / "seed-00000.ckpt", checkpoints / "seed-00001.ckpt")
    seen = []
    assert _resumed(tmp_path, folder, seen) == clean_seeds
    assert (1, 0) in seen  # seed 1 started over, not from seed 0's state
    other = _interrupted(tmp_path, "other")
    monkeypatch.setenv("COLLAPSELAB_CHECKPOINT_KEY", "22" * 32)  # someone else's folder
    seen = []
    assert _resumed(tmp_path, other, seen) == clean_seeds
    assert {(s, 0) for s in range(3)} <= set(seen)


def test_the_checkpoint_key_lives_outside_run_folders_with_mode_0600(tmp_path, monkeypatch):
    from collapselab.experiment import storage

    monkeypatch.delenv("COLLAPSELAB_CHECKPOINT_KEY")
    monkeypatch.setattr(storage, "_keys", {})
    key = storage.checkpoint_key()
    path = tmp_path / "xdg" / "collapselab" / "checkpoint.key"
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
    assert bytes.fromhex(path.read_text().strip()) == key == storage.checkpoint_key()


def test_a_truncated_snapshot_part_recomputes_its_chain(tmp_path, clean_seeds):
    folder = _interrupted(tmp_path)
    parts = list((folder / "seeds" / "checkpoints" / "snapshots").glob("*.npz"))
    assert parts
    for part in parts:
        part.write_bytes(part.read_bytes()[:50])
    assert _resumed(tmp_path, folder) == clean_seeds


# ---------------------------------------------------------------------------
# show, report and query trust no file of a run folder
# ---------------------------------------------------------------------------


def _edit_json(path, change):
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _rewrite_metrics(path, change, update_digest=True):
    frame = change(pq.read_table(path).to_pandas())
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    if update_digest:  # hand-edited with care: the schema still catches it
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        _edit_json(path.with_name("manifest.json"), lambda m: {**m, "metrics_sha256": digest})


DAMAGE = {
    "manifest-list": lambda f: (f / "manifest.json").write_text("[1, 2]"),
    "manifest-arms-5": lambda f: _edit_json(f / "manifest.json", lambda m: {**m, "arms": 5}),
    "manifest-arms-null": lambda f: _edit_json(
        f / "manifest.json", lambda m: {**m, "arms": [None]}
    ),
    "manifest-arms-escape": lambda f: _edit_json(
        f / "manifest.json", lambda m: {**m, "arms": ["../x"]}
    ),
    "manifest-deep": lambda f: (f / "manifest.json").write_text("[" * 100_000 + "]" * 100_000),
    "arm-halted-list": lambda f: _edit_json(
        f / "rep" / "manifest.json", lambda m: {**m, "halted": [1, 2]}
    ),
    "arm-seeds-text": lambda f: _edit_json(
        f / "rep" / "manifest.json", lambda m: {**m, "seeds": "many"}
    ),
    "metrics-digest": lambda f: _rewrite_metrics(
        f / "rep" / "metrics.parquet", lambda t: t[t.source != "theory"], update_digest=False
    ),
    "metrics-zero-rows": lambda f: _rewrite_metrics(f / "rep" / "metrics.parquet", lambda t: t[:0]),
    "metrics-strings": lambda f: _rewrite_metrics(
        f / "rep" / "metrics.parquet", lambda t: t.astype(str)
    ),
    "config-not-utf8": lambda f: (f / "rep" / "config.yaml").write_bytes(b"name: \xff\n"),
    "config-metrics-5": lambda f: (f / "rep" / "config.yaml").write_text("metrics: 5\n"),
    "config-alias-bomb": lambda f: (f / "rep" / "config.yaml").write_text(LAUGHS),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_show_and_report_refuse_a_damaged_file_in_one_line(finished, tmp_path, capsys, damage):
    folder = copy_of(finished, "two", tmp_path)
    (folder / "report.html").unlink()
    DAMAGE[damage](folder)
    refused(capsys, ["show", folder], folder)
    refused(capsys, ["show", folder, "--last"], folder)
    refused(capsys, ["report", folder], folder)


def test_query_leaves_damaged_files_out_with_a_warning(finished, tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    folder = copy_of(finished, "two", root)
    _rewrite_metrics(folder / "rep" / "metrics.parquet", lambda t: t.astype(str))
    capsys.readouterr()
    assert main(["query", "SELECT DISTINCT run_dir FROM metrics", "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "two/acc" in out and "two/rep" not in out
    assert "warning: skipped" in err and "column 'seed' holds" in err and "expected int64" in err


# ---------------------------------------------------------------------------
# query stays inside the results root
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "COPY (SELECT * FROM metrics) TO '{root}/two/rep/metrics.parquet' (FORMAT parquet)",
        "COPY (SELECT 1) TO '{root}/x.csv'",
        "ATTACH '{root}/x.duckdb' AS x",
        "EXPORT DATABASE '{root}/export'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; SELECT 2",
        "",
        ";",
        "-- x",
        "SELEC 1",
    ],
)
def test_query_reads_only_the_results_root_and_only_reads(finished, capsys, sql):
    pytest.importorskip("duckdb")
    root = finished
    refused(capsys, ["query", sql.format(root=root), "--root", root], root)


def test_a_huge_answer_stops_at_the_limit_with_a_line_saying_so(finished, capsys):
    pytest.importorskip("duckdb")
    capsys.readouterr()
    code = main(
        ["query", "SELECT * FROM range(100000000)", "--root", str(finished), "--format", "csv"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert len(out.splitlines()) == 1_000_001  # the header and the limit
    assert err.count("\n") == 1 and "stopped there" in err


# ---------------------------------------------------------------------------
# Bad values are config errors, found before anything is written
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"data": {"id": "gaussian", "params": {"dim": 1, "mean": [float("nan")]}}}, "mean.0"),
        ({"data": {"id": "gaussian", "params": {"dim": 1, "mean": float("inf")}}}, "mean"),
        ({"samples_per_generation": True}, "samples_per_generation"),
        ({"seeds": "2"}, "seeds"),
        ({"checkpoint_every": True}, "checkpoint_every"),
        ({"model": "kde", "batched": "yes"}, "batched"),
        ({"model": {"id": "gmm", "params": {"n_components": 50}}}, "samples_per_generation"),
        ({"oversample": float("inf")}, "oversample"),
        ({"root_seed": -1}, "root_seed"),
        ({"decoding": {"temperature": float("inf")}}, "decoding.temperature"),
    ],
)
def test_bad_values_are_refused_naming_the_field(tmp_path, capsys, change, field):
    out = tmp_path / "out"
    refused(capsys, ["run", write_config(tmp_path, {**BASE, **change}), "--out", out], match=field)
    assert not out.exists()


def test_bad_decoding_and_text_sources_are_refused_before_writing(tmp_path, capsys):
    zipf = {
        **BASE,
        "data": {"id": "zipf", "params": {"vocabulary": 50, "n_test": 50}},
        "model": "categorical",
        "metrics": ["types"],
    }
    out = tmp_path / "out"
    bias = write_config(tmp_path, {**zipf, "decoding": {"bias": float("inf")}})
    refused(capsys, ["run", bias, "--out", out], match="decoding.bias")
    top_k = write_config(tmp_path, {**zipf, "decoding": {"top_k": True}}, name="k.yaml")
    refused(capsys, ["run", top_k, "--out", out], match="decoding.top_k")
    one = tmp_path / "one.txt"
    one.write_text("a single document")
    for path, message in [(tmp_path / "missing.txt", "does not exist"), (one, "at least 2")]:
        config = _text_config(tmp_path, path, unit="document")
        line = refused(capsys, ["run", config, "--out", out], match="config field 'data'")
        assert message in line
    assert not out.exists()
    refused(
        capsys, ["phase", tmp_path, "--x", "a", "--y", "b", "--metric", "m", "--threshold", "nan"]
    )


# ---------------------------------------------------------------------------
# Text input
# ---------------------------------------------------------------------------


def test_text_input_reads_long_csv_fields_bom_gzip_and_says_what_it_skipped(tmp_path, capsys):
    from collapselab.data.user import read_documents
    from collapselab.errors import DataError

    long = tmp_path / "long.csv"
    long.write_text("text\n" + "x" * 200_000 + "\nshort\n")
    assert [len(d) for d in read_documents(long)] == [200_000, 5]
    bom = tmp_path / "bom.jsonl"
    bom.write_text("\ufeff" + json.dumps({"text": "first"}) + "\n" + json.dumps({"text": "b"}))
    assert read_documents(bom) == ["first", "b"]
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    assert read_documents(packed) == ["one", "two"]
    (tmp_path / "t.txt.gz").write_bytes(gzip.compress(b"a b\n\nc d\n"))
    assert read_documents(tmp_path / "t.txt.gz", unit="paragraph") == ["a b", "c d"]
    ints = tmp_path / "ints.parquet"
    pd.DataFrame({"text": [1, 2]}).to_parquet(ints)
    with pytest.raises(DataError, match="holds int64, not text"):
        read_documents(ints)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"text": "a"}\n{"other": 1}\n{"text": "b"}\n')
    with pytest.warns(UserWarning, match="1 of 3 rows have no 'text'"):
        assert read_documents(missing) == ["a", "b"]
    bomb = tmp_path / "bomb.txt.gz"
    bomb.write_bytes(gzip.compress(b"a " * (4 << 20)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLLAPSELAB_MAX_MEMORY", "8M")  # 1 MiB of text at most
        with pytest.raises(DataError, match="holds more than"):
            read_documents(bomb)


# ---------------------------------------------------------------------------
# Processes: Ray's address, SIGTERM, orphaned workers
# ---------------------------------------------------------------------------


def test_an_unreachable_ray_address_fails_fast_in_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    config = write_config(tmp_path, BASE)
    start = time.monotonic()
    argv = ["sweep", config, "--grid", "seeds=1,2", "--backend", "ray", "--root", tmp_path]
    refused(capsys, [*argv, "--address", "127.0.0.1:1"], tmp_path, match="cannot connect")
    refused(capsys, [*argv, "--address", "nonsense"], tmp_path, match="HOST:PORT")
    assert time.monotonic() - start < 60


SLOW = {**SEEDS, "name": "slow", "generations": 400, "seeds": 4, "samples_per_generation": 200}


def _spawn(tmp_path, *extra, **kwargs):
    config = write_config(tmp_path, SLOW, name="slow.yaml")
    out = tmp_path / "slow"
    command = [sys.executable, "-m", "collapselab", "run", config, "--out", str(out), "--quiet"]
    process = subprocess.Popen([*command, *extra], stderr=subprocess.PIPE, text=True, **kwargs)
    deadline = time.monotonic() + 120
    while not any(out.rglob("*.ckpt")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    return process, out


@pytest.mark.slow
def test_sigterm_marks_the_run_interrupted_and_it_resumes(tmp_path):
    process, out = _spawn(tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    err = process.stderr.read()
    assert "Traceback" not in err and err.startswith("interrupted:"), err
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_pool_workers_exit_when_their_parent_is_killed(tmp_path):
    import psutil

    process, _ = _spawn(tmp_path, "--workers", "2")
    workers = psutil.Process(process.pid).children()
    assert len(workers) >= 2
    process.kill()  # the parent only
    process.wait(timeout=30)
    _, alive = psutil.wait_procs(workers, timeout=20)
    for worker in alive:
        worker.kill()
    assert not alive, "workers outlived their parent"
