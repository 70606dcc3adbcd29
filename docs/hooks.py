"""MkDocs hooks: pages generated from the code, so they cannot drift from it.

A page holding one of the markers below gets it replaced when the site is built:

* ``<!-- cli -->``: the ``--help`` of ``collapselab`` and of each of its commands;
* ``<!-- presets -->``: every bundled preset with its description, arms and metrics;
* ``<!-- components -->``: every registered component id per kind, with the first line
  of its docstring.

The docstrings are numpydoc with Sphinx roles (``:func:`name```); the API pages show a
role as the code it wraps (``~a.b.c`` as ``c``) and a paragraph's closing ``::`` as ``:``.
"""

from __future__ import annotations

import argparse
import os
import re
from importlib import resources
from typing import Any

import yaml

WIDTH = "88"  # argparse wraps help to $COLUMNS: fixed, so the page does not depend on the terminal


def _cli() -> str:
    os.environ["COLUMNS"] = WIDTH
    from collapselab.cli import build_parser

    parser = build_parser()
    parts = ["```text", parser.format_help().rstrip(), "```"]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        parts += [f"## `collapselab {name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _presets() -> str:
    parts = []
    folder = resources.files("collapselab") / "presets"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        name = entry.name.removesuffix(".yaml")
        parts += [f"## `{name}`", "", _one_line(data.get("description", "")), ""]
        arms = [arm.get("name", "?") for arm in data.get("arms") or []]
        base = [
            f"model `{data['model']['id']}`" if "model" in data else "",
            f"data `{data['data']['id']}`" if "data" in data else "",
            f"{data['generations']} generations" if "generations" in data else "",
            f"{data['seeds']} seeds" if "seeds" in data else "",
        ]
        parts.append("- base: " + ", ".join(b for b in base if b))
        if arms:
            parts.append("- arms: " + ", ".join(f"`{a}`" for a in arms))
        metrics = data.get("metrics") or []
        if metrics:
            parts.append("- metrics: " + ", ".join(f"`{m}`" for m in metrics))
        parts += ["", f"Run it with `collapselab run {name}`.", ""]
    return "\n".join(parts)


def _components() -> str:
    from collapselab import registry

    parts = []
    for kind in registry.KINDS:
        parts += [f"## {kind}", "", "| id | what it is |", "|---|---|"]
        for id_ in registry.list_ids(kind):
            doc = (registry.get(kind, id_).__doc__ or "").strip().split("\n\n")[0]
            cell = _one_line(doc).replace("|", "\\|")
            parts.append(f"| `{id_}` | {cell} |")
        parts.append("")
    return "\n".join(parts)


_MARKERS = {"<!-- cli -->": _cli, "<!-- presets -->": _presets, "<!-- components -->": _components}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    for marker, make in _MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|exc|obj|const):(?=<code>)")
_SHORT = re.compile(r"<code>~(?:[\w]+\.)*([\w]+)</code>")
_LITERAL = re.compile(r"::(?=</p>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    html = _ROLE.sub("", html)
    html = _SHORT.sub(r"<code>\1</code>", html)
    return _LITERAL.sub(":", html)
