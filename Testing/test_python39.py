"""Every file 3D Slicer imports must work on Python 3.9 (Slicer 5.8 ships 3.9.10).

Which files: the module file and every SliceAndConquerLib file it imports, directly or through other Lib
files, at any depth and including imports inside functions (they run inside Slicer at the first Start).
The `snc` command line (cli.py, replay.py, imageio.py, demo.py, data/, the training scripts, ...) runs in
an ordinary Python (pyproject: requires-python >= 3.10) and is left out of that check unless the module
pulls it in; every packaged file must still parse as Python 3.9 (the build byte-compiles them all).

How: vermin (PyPI) with the 3.9 target finds syntax and library features newer than 3.9 (`match`,
`itertools.pairwise`, `zip(strict=...)`, ...); it reads a copy of each file in which the annotations that
are never evaluated (those of a file with `from __future__ import annotations`) are blanked out, and
evaluates the other annotations (`eval_annotations`), as Python does; `# novm` comments are not honoured.
vermin's own detection of `X | Y` types is a heuristic that also flags Qt flags (`QMessageBox.Yes |
QMessageBox.No`), so union types are found here on the syntax tree instead: an `|` in an evaluated
annotation, an `|` with `None`, a builtin type, a subscripted type or a class of the same file on either
side, and an `|` in the second argument of isinstance/issubclass. The checker itself is tested on snippets
that must fail and on snippets that must pass.
"""
import ast
import glob
import os
import pathlib
import shutil
import subprocess

import pytest
import vermin  # required (the "test" extra): no skip, a missing checker must not pass silently

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULE_FILE = ROOT / "SliceAndConquer" / "SliceAndConquer.py"
TARGET = (3, 9)


# ---- which files Slicer imports ---------------------------------------------------------------------
def _module_path(name):
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _imported_names(path):
    """Dotted names of everything `path` imports, anywhere in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1]  # the package a relative import starts from (for __init__.py: the package itself)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`


def slicer_imported_files():
    """The module file and the closure of SliceAndConquerLib files it imports."""
    seen, todo = [], [MODULE_FILE]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for name in _imported_names(path):
            if name.split(".")[0] != "SliceAndConquerLib":
                continue
            pieces = name.split(".")
            for end in range(1, len(pieces) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, ...
                found = _module_path(".".join(pieces[:end]))
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(seen)


# ---- the check ---------------------------------------------------------------------------------------
def _has_future_annotations(tree):
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names) for node in tree.body)


def _annotation_nodes(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                yield node.returns
            arguments = node.args
            for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [arguments.vararg,
                                                                                          arguments.kwarg]:
                if arg is not None and arg.annotation is not None:
                    yield arg.annotation
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def runtime_source(source):
    """`source` with the annotations Python never evaluates replaced by string literals of the same number
    of lines (so line numbers stay), or `source` itself when its annotations are evaluated."""
    tree = ast.parse(source)
    if not _has_future_annotations(tree):
        return source
    lines = source.encode("utf-8").splitlines(keepends=True)  # ast offsets are UTF-8 byte columns
    spans = sorted(((n.lineno, n.col_offset, n.end_lineno, n.end_col_offset) for n in _annotation_nodes(tree)),
                   reverse=True)
    for line, col, end_line, end_col in spans:  # from the end, so earlier offsets stay valid
        start = sum(len(text) for text in lines[:line - 1]) + col
        end = sum(len(text) for text in lines[:end_line - 1]) + end_col
        blob = b"".join(lines)
        blank = b'("""' + b"\n" * (end_line - line) + b'""")'
        lines = (blob[:start] + blank + blob[end:]).splitlines(keepends=True)
    return b"".join(lines).decode("utf-8")


BUILTIN_TYPES = {"int", "float", "complex", "str", "bytes", "bytearray", "bool", "list", "dict", "tuple",
                 "set", "frozenset", "type", "object", "range", "slice", "memoryview"}
GENERIC_TYPES = {"list", "dict", "tuple", "set", "frozenset", "type", "Optional", "Union", "List", "Dict",
                 "Tuple", "Set", "FrozenSet", "Type", "Callable", "Literal", "Annotated", "Sequence", "Mapping",
                 "Iterable", "Iterator", "ndarray", "NDArray", "ClassVar", "Final"}


def _is_type_like(node, classes):
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if isinstance(node, ast.Name) and (node.id in BUILTIN_TYPES or node.id in classes):
        return True
    if isinstance(node, ast.Subscript):  # list[int], Optional[X], np.ndarray[...]; not masks[key]
        value = node.value
        name = value.id if isinstance(value, ast.Name) else value.attr if isinstance(value, ast.Attribute) else ""
        return name in GENERIC_TYPES
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and (
        _is_type_like(node.left, classes) or _is_type_like(node.right, classes))


def union_type_lines(source):
    """Lines where `X | Y` builds a type at import or run time (TypeError before Python 3.10)."""
    tree = ast.parse(source)
    evaluated = [] if _has_future_annotations(tree) else list(_annotation_nodes(tree))
    classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    lines = set()
    for annotation in evaluated:
        lines.update(n.lineno for n in ast.walk(annotation)
                     if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "isinstance", "issubclass") and len(node.args) == 2:
            lines.update(n.lineno for n in ast.walk(node.args[1])
                         if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr))
    skip = {id(n) for a in _annotation_nodes(tree) for n in ast.walk(a)}  # annotations: handled above
    for node in ast.walk(tree):
        if (id(node) not in skip and isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)
                and (_is_type_like(node.left, classes) or _is_type_like(node.right, classes))):
            lines.add(node.lineno)
    return sorted(lines)


def _config():
    config = vermin.Config()
    config.add_target(TARGET, exact=False)  # "3.9-": 3.9 or older must be enough
    config.set_eval_annotations(True)
    config.set_parse_comments(False)  # a `# novm` comment must not hide anything
    config.set_verbose(3)  # so output_text() names the feature and its line
    config.set_show_tips(False)
    return config


def violations(source, path="<snippet>"):
    """What in `source` needs a Python newer than 3.9 at import time (empty if nothing)."""
    found = [f"{path}:{line}: union type `X | Y` evaluated at run time needs Python 3.10"
             for line in union_type_lines(source)]
    visitor = vermin.visit(runtime_source(source), _config(), path)
    if not isinstance(visitor, vermin.SourceVisitor):  # vermin could not parse it: needs a newer Python
        return found + [f"{path}: cannot be parsed by Python {TARGET[0]}.{TARGET[1]} (needs {visitor})"]
    needed = visitor.minimum_versions()[1]
    if needed is not None and tuple(needed) > TARGET:
        details = [line.strip() for line in visitor.output_text().splitlines() if line.strip()
                   and any(str(v) in line for v in ("3.10", "3.11", "3.12", "3.13", "3.14"))]
        found.append(f"{path}: vermin: needs Python {needed[0]}.{needed[1]}: " + "; ".join(details))
    return found


# ---- tests -------------------------------------------------------------------------------------------
def test_the_files_slicer_imports_are_found():
    files = {str(p.relative_to(ROOT)) for p in slicer_imported_files()}
    for expected in ("SliceAndConquer/SliceAndConquer.py", "SliceAndConquerLib/__init__.py",
                     "SliceAndConquerLib/dependencies.py", "SliceAndConquerLib/slicer_logic.py",
                     "SliceAndConquerLib/session.py", "SliceAndConquerLib/pipelines.py"):
        assert expected in files
    assert "SliceAndConquerLib/cli.py" not in files  # the command line is not part of the module


def test_every_file_slicer_imports_is_valid_for_python_3_9():
    found = [v for path in slicer_imported_files()
             for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("snippet", [
    "match x:\n    case 1:\n        pass\n",
    "def f(x: int | None):\n    pass\n",                                    # evaluated at def time
    "import vtk\ndef f(x: vtk.vtkObject | vtk.vtkCommand):\n    pass\n",
    "from __future__ import annotations\nimport vtk\nok = isinstance(1, vtk.vtkObject | vtk.vtkCommand)\n",
    "from __future__ import annotations\nfrom typing import Optional\nX = Optional[int] | str\n",
    "from __future__ import annotations\nclass A:\n    pass\nMaybeA = A | None\n",
    "class P:\n    pass\nclass W:\n    def set(self, p: P | None) -> None:\n        pass\n",
    "from __future__ import annotations\nok = isinstance(1, int | str)\n",  # not an annotation
    "from __future__ import annotations\nimport itertools\npairs = itertools.pairwise([1, 2, 3])\n",
    "from __future__ import annotations\ndef f(a, b):\n    return list(zip(a, b, strict=True))\n",
    "from dataclasses import dataclass\n@dataclass(slots=True)\nclass A:\n    x: int = 0\n",
    "import itertools  # novm\npairs = itertools.pairwise([1, 2])  # novm\n",
])
def test_the_check_refuses_what_python_3_9_cannot_import(snippet):
    assert violations(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "from __future__ import annotations\ndef f(x: int | None) -> list[int] | None:\n    y: dict[str, int] | None = None\n",
    "from __future__ import annotations\nclass A:\n    x: int | None = None\n    y: 'str | None'\n",
    "from typing import Optional\ndef f(x: Optional[int]) -> list[int]:\n    return [x or 0]\n",
    "import qt\nanswer = qt.QMessageBox.question(None, 't', 'q', qt.QMessageBox.Yes | qt.QMessageBox.No)\n",
    "import enum\nclass F(enum.IntFlag):\n    A = 1\n    B = 2\nboth = F.A | F.B\nflags = 1 | 2\n",
    "import numpy as np\ndef f(a, b):\n    return (a > 0) | (b < 1)\n",
    "def f(masks, taken, key):\n    masks[key] = masks[key] | taken.get(key)\n    return masks[key] | taken[key]\n",
    "d = {'a': 1} | {'b': 2}\n",                                            # 3.9
    "from __future__ import annotations\ndef f(x: int |\n      None,\n      y: 'ü' = 1) -> int:\n    return 1\n",
])
def test_the_check_accepts_what_python_3_9_imports(snippet):
    assert violations(snippet) == []


def packaged_files():
    """Every .py file the extension package holds (the module's list and the Lib's recursive glob)."""
    return [MODULE_FILE] + sorted((ROOT / "SliceAndConquerLib").rglob("*.py"))


def test_every_packaged_file_parses_as_python_3_9():
    """The extension build byte-compiles every packaged file with Slicer's Python, and any of them can be
    imported from Slicer's console, so even the command-line-only files must at least parse on 3.9."""
    errors = []
    for path in packaged_files():
        try:
            ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=TARGET)
        except SyntaxError as error:
            errors.append(f"{path.relative_to(ROOT)}:{error.lineno}: {error.msg}")
    assert not errors, "\n".join(errors)


def _python39():
    """A Python 3.9 that runs (a pyenv shim without 3.9 selected does not), or None."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python"))) + [
        shutil.which("python3.9")]
    for candidate in filter(None, candidates):
        try:
            run = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60)
        except OSError:
            continue
        if run.returncode == 0 and run.stdout.strip() == "(3, 9)":
            return candidate
    return None


def test_python_3_9_compiles_every_packaged_file():
    """A second opinion from a real 3.9 parser, where one is installed (pyenv); vermin is the required check."""
    python39 = _python39()
    if python39 is None:
        pytest.skip("no Python 3.9 interpreter on this machine")
    files = [str(p) for p in packaged_files()]
    code = ("import ast, sys\nfor f in sys.argv[1:]:\n"
            "    compile(open(f, encoding='utf-8').read(), f, 'exec', dont_inherit=True)\n")
    result = subprocess.run([python39, "-c", code, *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
