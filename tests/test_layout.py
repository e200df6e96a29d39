"""The shape of gan/: the paper's core at the root, three wings, and who may import whom
(each wing's __init__ docstring states its rule; this test holds the code to it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

GAN = ROOT / "gan"
WINGS = ("data", "evaluation", "deploy")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def direct_imports(path: Path) -> set[str]:
    """gan modules imported anywhere in the file, module-level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.split(".")[0] == "gan" and name in MODULES}


MODULES = {module_name(p): p for p in GAN.rglob("*.py")}


def closure(name: str) -> set[str]:
    """Every gan module ``name`` imports, directly or through others."""
    seen, todo = set(), [name]
    while todo:
        for imported in direct_imports(MODULES[todo.pop()]) - seen:
            seen.add(imported)
            todo.append(imported)
    return seen - {name}


def in_wing(name: str, wing: str) -> bool:
    return name == f"gan.{wing}" or name.startswith(f"gan.{wing}.")


def test_the_layout_stands():
    root = {p.stem for p in GAN.glob("*.py")} - {"__init__"}
    assert {"networks", "losses", "train", "checkpoint", "metrics", "runtime", "fsio",
            "config"} <= root
    assert {p.name for p in GAN.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(WINGS)
    for wing in WINGS:
        assert ast.get_docstring(ast.parse((GAN / wing / "__init__.py").read_text())), wing
    assert (GAN / "evaluation" / "baselines" / "clhe.py").exists()


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("gan.data.")))
def test_data_never_imports_train_evaluation_or_deploy(name):
    bad = {m for m in closure(name)
           if m == "gan.train" or in_wing(m, "evaluation") or in_wing(m, "deploy")}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("gan.deploy.")))
def test_deploy_never_imports_train_or_data(name):
    bad = {m for m in closure(name) if m == "gan.train" or in_wing(m, "data")}
    assert not bad, f"{name} imports {sorted(bad)}"


DOWNLOAD_CODE = {"gan.data.fetch", "gan.data.archive", "gan.data.pirm", "gan.data.sample"}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("gan.evaluation.")))
def test_evaluation_never_imports_train_or_the_download_code(name):
    bad = {m for m in closure(name) if m == "gan.train" or m in DOWNLOAD_CODE}
    assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_itself_through_others(name):
    assert name not in closure(name), f"{name} is part of an import cycle"


def may_import(wing: str) -> set[str]:
    """The modules the wing's ``__init__`` docstring allows it, from its 'May import' paragraph."""
    doc = ast.get_docstring(ast.parse((GAN / wing / "__init__.py").read_text())) or ""
    paragraph = next((p for p in doc.split("\n\n") if p.startswith("May import")), "")
    allowed = set(re.findall(r"\bgan(?:\.\w+)+", paragraph.split("Never imports")[0]))
    assert allowed, f"gan/{wing}/__init__.py names no module in a 'May import' paragraph"
    return allowed


@pytest.mark.parametrize("wing", WINGS)
def test_each_wing_imports_exactly_what_its_docstring_allows(wing):
    # From outside the wing, each module counted once (a package as its name: gan.deploy.photo_io).
    used = set()
    for name, path in MODULES.items():
        if in_wing(name, wing):
            used |= {m for m in direct_imports(path) if not in_wing(m, wing)}
    allowed = may_import(wing)
    assert not used - allowed, f"gan.{wing} imports what its docstring does not allow: " \
                               f"{sorted(used - allowed)}"
    assert not allowed - used, f"gan.{wing}'s docstring allows what it does not import: " \
                               f"{sorted(allowed - used)}"
