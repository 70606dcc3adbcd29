"""What a lab depends on: optional packages named in one line, example data for every
data kind, the documented extension example, and version facts that agree."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import collapselab
from collapselab import make
from collapselab.core import DataKind, RealData
from collapselab.errors import MissingDependencyError
from collapselab.testing.examples import EXAMPLE_DATA, example_data

ROOT = Path(__file__).resolve().parents[1]


def _missing(monkeypatch, module):
    # A None entry makes `import module` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, module, None)


def test_exact_wasserstein_without_pot_names_its_extra(monkeypatch):
    _missing(monkeypatch, "ot")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    real = RealData(train=x, test=y, kind=DataKind.CONTINUOUS)
    metric = make("metric", "wasserstein", method="exact")
    with pytest.raises(MissingDependencyError) as info:
        metric(None, rng.normal(size=(20, 2)), real, rng=rng)
    assert str(info.value) == (
        "wasserstein with method: exact in 2 or more dimensions needs the optional package "
        "'POT': pip install \"collapselab[exact]\""
    )


def test_prdc_without_its_package_names_its_extra(monkeypatch):
    from collapselab.metrics.images import prdc_values

    _missing(monkeypatch, "prdc")
    rng = np.random.default_rng(1)
    with pytest.raises(MissingDependencyError, match=r'pip install "collapselab\[prdc\]"'):
        prdc_values(None, rng.random((20, 4, 4)), rng.random((21, 4, 4)), embedding="pixels")


def test_near_dedup_without_datasketch_names_its_extra(monkeypatch):
    _missing(monkeypatch, "datasketch")
    curator = make("curator", "dedup")
    real = example_data(DataKind.TEXT)
    with pytest.raises(MissingDependencyError, match=r'pip install "collapselab\[dedup\]"'):
        curator(
            real.train[:5],
            reference=real,
            rng=np.random.default_rng(0),
            provenance=np.ones(5, bool),
        )
    # Exact duplicates need nothing extra.
    kept = make("curator", "dedup", near=False)(
        ["a b", "A  b", "c"],
        reference=real,
        rng=np.random.default_rng(0),
        provenance=np.ones(3, bool),
    )
    assert kept.kept == ["a b", "c"]


def test_every_data_kind_has_example_data():
    assert set(EXAMPLE_DATA) == set(DataKind)
    for kind in DataKind:
        a, b = example_data(kind, seed=3), example_data(kind, seed=3)
        assert a.kind == kind
        assert repr(a.train) == repr(b.train), "example data is deterministic given its seed"


def test_the_extending_page_example_passes_the_conformance_checks():
    page = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    code = "\n".join(re.findall(r"```python\n(.*?)```", page, flags=re.S))
    assert "check_model" in code
    # A fresh process: the example registers "box", which the rest of the suite must not see.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_version_license_and_citation_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == collapselab.__version__
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert f"version: {collapselab.__version__}\n" in citation
    assert f"## [{collapselab.__version__}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert project["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    assert (Path(collapselab.__file__).parent / "py.typed").is_file()
    assert (
        "py.typed"
        in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
            "package-data"
        ]["collapselab"]
    )


def test_torch_is_a_lower_bound_and_the_makefile_installs_the_cpu_wheel_first():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "torch>=2.13" in extras["neural"]
    assert "TORCH  := torch==2.13.0" in (ROOT / "Makefile").read_text()
    install = _install_recipe()
    assert install.index('--no-compile "$(TORCH)"') < install.index('-e ".[test,neural]"')


def _install_recipe():
    """The Makefile's install rule: from its target line to the stamp it touches."""
    makefile = (ROOT / "Makefile").read_text()
    return makefile[makefile.index("$(STAMP): pyproject.toml") : makefile.index("touch $(STAMP)")]


def test_the_install_compiles_the_bytecode_pip_was_told_not_to():
    # pip's own compile runs on one core; the Makefile skips it and runs compileall on
    # every core instead, so no installed module is left uncompiled
    install = _install_recipe()
    pips = [line for line in install.splitlines() if "pip install" in line]
    assert pips and all("--upgrade pip" in line or "--no-compile" in line for line in pips)
    last = [line for line in install.splitlines() if line.strip()][-1]
    assert "compileall" in last and "$(VENV)/lib" in last
