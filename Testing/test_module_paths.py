"""`import SliceAndConquerLib` from the module file, in a clone and in the packaged extension.

Slicer puts on sys.path only the folder of each scripted-module file it loads (Additional module paths:
<clone>/SliceAndConquer). The module file's first statements, before `import qt`, add the clone root when
the Lib is there. These tests run exactly those statements of SliceAndConquer/SliceAndConquer.py (no Qt
here), in a fresh interpreter whose sys.path holds only the module's folder, as in Slicer.
"""
import ast
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULE_FILE = ROOT / "SliceAndConquer" / "SliceAndConquer.py"


def _prelude():
    """The module file's statements before its first Qt/Slicer import, as source code."""
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    body = []
    for node in tree.body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n.split(".")[0] in ("qt", "ctk", "vtk", "slicer") for n in names):
            break
        body.append(node)
    names = {n.name for n in body if isinstance(n, ast.FunctionDef)}
    assert "libraryFolderToAdd" in names, "the sys.path fix must come before `import qt`"
    return ast.unparse(ast.Module(body=body, type_ignores=[]))


def _run_in_slicer_like_python(module_file, tmp_path):
    """Run the prelude as `module_file` in `python -S` (no site-packages, so no installed copy of the Lib)
    with sys.path = [folder of module_file], then import SliceAndConquerLib; returns what happened."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, sys\n"
        f"sys.path[:] = [{str(module_file.parent)!r}] + [p for p in sys.path if 'python3' in p and 'site' not in p]\n"
        "before = list(sys.path)\n"
        f"namespace = {{'__file__': {str(module_file)!r}, '__name__': 'SliceAndConquer'}}\n"
        f"exec(compile({_prelude()!r}, {str(module_file)!r}, 'exec'), namespace)\n"
        "added = [p for p in sys.path if p not in before]\n"
        "import SliceAndConquerLib\n"
        "print(json.dumps({'added': added, 'lib': SliceAndConquerLib.__file__}))\n")
    result = subprocess.run([sys.executable, "-S", str(script)], capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_the_fix_a_clone_cannot_import_the_lib(tmp_path):
    """The defect the fix is for: only the module's folder on sys.path."""
    result = subprocess.run([sys.executable, "-S", "-c", "import SliceAndConquerLib"], capture_output=True,
                            text=True, env={"PYTHONPATH": str(MODULE_FILE.parent)}, cwd=str(tmp_path),
                            timeout=60)
    assert result.returncode != 0 and "SliceAndConquerLib" in result.stderr


def test_from_a_clone_the_module_makes_the_lib_next_to_it_importable(tmp_path):
    outcome = _run_in_slicer_like_python(MODULE_FILE, tmp_path)
    assert outcome["added"] == [str(ROOT)]
    assert pathlib.Path(outcome["lib"]) == ROOT / "SliceAndConquerLib" / "__init__.py"


def test_the_packaged_layout_needs_nothing_added(tmp_path):
    """Extension package: SliceAndConquer.py and SliceAndConquerLib/ both in qt-scripted-modules/."""
    scripted = tmp_path / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    scripted.mkdir(parents=True)
    shutil.copy(MODULE_FILE, scripted / "SliceAndConquer.py")
    shutil.copytree(ROOT / "SliceAndConquerLib", scripted / "SliceAndConquerLib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    outcome = _run_in_slicer_like_python(scripted / "SliceAndConquer.py", tmp_path)
    assert outcome["added"] == []
    assert pathlib.Path(outcome["lib"]) == scripted / "SliceAndConquerLib" / "__init__.py"


@pytest.fixture
def library_folder_to_add():
    namespace = {"__file__": str(MODULE_FILE)}
    exec(compile(_prelude(), str(MODULE_FILE), "exec"), namespace)
    return namespace["libraryFolderToAdd"]


def test_the_clone_root_is_added_once(library_folder_to_add, tmp_path):
    (tmp_path / "SliceAndConquer").mkdir()
    (tmp_path / "SliceAndConquerLib").mkdir()
    (tmp_path / "SliceAndConquerLib" / "__init__.py").write_text("")
    module_folder = str(tmp_path / "SliceAndConquer")
    assert library_folder_to_add(module_folder, [module_folder]) == str(tmp_path)
    assert library_folder_to_add(module_folder, [module_folder, str(tmp_path) + "/"]) is None


def test_nothing_is_added_where_no_lib_is_found(library_folder_to_add, tmp_path):
    (tmp_path / "SliceAndConquer").mkdir()
    (tmp_path / "SliceAndConquerLib").mkdir()  # a folder without __init__.py is not the package
    assert library_folder_to_add(str(tmp_path / "SliceAndConquer"), []) is None
