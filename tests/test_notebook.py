"""The example notebook runs top to bottom (with nbclient, in a fresh kernel) and shows
what it says: the results' HTML summaries, figures, the sweep's table and a verdict."""

from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def _outputs(cell, mime):
    return [
        output["data"][mime]
        for output in cell.get("outputs", [])
        if output.get("output_type") in ("execute_result", "display_data")
        and mime in output.get("data", {})
    ]


def _cell(nb, text):
    """The code cell whose source contains ``text``."""
    found = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
    assert len(found) == 1, f"one code cell must contain {text!r}"
    return found[0]


@pytest.mark.slow
def test_quickstart_notebook_executes_and_shows_its_results(tmp_path, monkeypatch):
    import collapselab as cl
    from collapselab.report.verdict import DEFINITIONS

    monkeypatch.delenv("COLLAPSELAB_RESULTS", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "the notebook is committed without outputs"
    )
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell

    assert cl.__version__ in _outputs(_cell(nb, "cl.__version__"), "text/plain")[0]
    run_html = _outputs(_cell(nb, 'cl.run("quickstart"'), "text/html")
    assert run_html and "collapselab run quickstart" in run_html[0]
    assert "<table class='headline'>" in run_html[0]
    for text in ('results.plot(["variance"', 'sweep.plot("variance")'):
        # once: the returned figure, not also pyplot's copy of it
        assert len(_outputs(_cell(nb, text), "image/png")) == 1, f"{text} shows its figure"
    sweep_html = _outputs(_cell(nb, "cl.sweep(config"), "text/html")[0]
    assert "2 points over samples_per_generation" in sweep_html
    table = _outputs(_cell(nb, "last.pivot_table"), "text/plain")[0]
    assert "tail_mass" in table and "accumulate" in table
    verdict = _outputs(_cell(nb, "sweep.verdict()"), "text/html")[0]
    for definition in DEFINITIONS:
        assert definition.name in verdict
    # the results are where the notebook said, and read back the same outside it
    results = cl.load(tmp_path / "runs" / "gaussian-n")
    assert results.sweep and results.arms == ["replace", "accumulate"]
    assert sorted(results.metrics()["samples_per_generation"].unique()) == [10, 100]
