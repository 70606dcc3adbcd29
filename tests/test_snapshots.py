"""The snapshot recorder: per-generation sample documents of text chains."""

import json

import numpy as np

from collapselab.chain import run_seed
from collapselab.experiment import load_config
from collapselab.experiment.runner import prepare, run
from collapselab.experiment.snapshots import SAMPLE_DOCUMENTS, SNAPSHOT_SEED
from collapselab.report.snapshots import load_snapshots

TEXT = {
    "name": "text",
    "data": {"id": "pydoc", "params": {"unit": "paragraph"}},
    "model": {"id": "ngram", "params": {"order": 2, "level": "char"}},
    "samples_per_generation": 20,
    "real_samples": 40,
    "generations": 5,
    "seeds": 2,
    "metrics": ["types"],
}


def test_text_chains_keep_a_few_documents_of_every_generation(tmp_path):
    config = load_config(TEXT)
    result = run(config, tmp_path / "run")
    arm = result.arms[0]
    with np.load(arm.directory / "snapshots.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        arrays = {key: npz[key] for key in npz.files}
    assert meta["samples"] == list(range(5))
    outputs = {}
    run_seed(
        prepare(config)[0].spec,
        SNAPSHOT_SEED,
        None,
        lambda s: outputs.update({s.generation: s.output}),
    )
    for g in range(5):
        assert meta["encodings"][f"texts_g{g}"] == "strings"
        ends = np.cumsum(arrays[f"texts_g{g}/lengths"])
        text = str(arrays[f"texts_g{g}/text"])
        docs = [text[a:b] for a, b in zip(np.r_[0, ends[:-1]], ends, strict=True)]
        assert docs == outputs[g][:SAMPLE_DOCUMENTS]
    # the report reads them as its per-generation table of sample texts
    snapshots = load_snapshots(arm.directory)
    assert snapshots is not None
    assert {g: docs[:SAMPLE_DOCUMENTS] for g, docs in snapshots.texts.items()} == {
        g: outputs[g][:SAMPLE_DOCUMENTS] for g in range(5)
    }
    # the reader of snapshot files still reads the file (and the snapshot generations)
    snap = load_snapshots(arm.directory)
    assert list(snap.outputs) == [0, 2, 4] and snap.outputs[4] == outputs[4]


def test_continuous_chains_keep_no_per_generation_samples(tmp_path):
    config = load_config({**TEXT, "data": "gaussian", "model": "gaussian", "metrics": ["variance"]})
    arm = run(config, tmp_path / "run").arms[0]
    with np.load(arm.directory / "snapshots.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
    assert "samples" not in meta and set(meta["encodings"]) == {"real", "g0", "g2", "g4"}
