"""The Slicer Extensions Index's checks that can be made offline, and that everything the module needs is packaged.

The index runs scripts/check_description_files.py (Slicer/ExtensionsIndex) on the catalog entry
SliceAndConquer.json and a clone of the repository: JSON format and schema, extension name, category,
git repository name, scm_url syntax, project() name, icon and screenshot URLs that download as images,
LICENSE, repository size, dependencies that exist in the index. The URL downloads and the GitHub topic
need the network; here each raw.githubusercontent.com URL is mapped back to the file of this repository
it names, which must exist and be a PNG.
"""
import json
import pathlib
import re
import struct
import subprocess
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXTENSION_NAME = "SliceAndConquer"
CATALOG_ENTRY = ROOT / f"{EXTENSION_NAME}.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The catalog entry schema (Slicer/Slicer Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json).
SCHEMA_URL = "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json#"
SCHEMA_KEYS = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
               "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}
REPOSITORY_PREFIXES = ("Slicer", "Slicer-", "Slicer_", "SlicerExtension-", "SlicerExtension_")


@pytest.fixture(scope="module")
def entry():
    raw = CATALOG_ENTRY.read_bytes()
    assert b"\r" not in raw, "the index accepts LF line endings only"
    return json.loads(raw)


@pytest.fixture(scope="module")
def cmake():
    return (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")


def cmake_set(text, variable):
    """The quoted value of `set(VARIABLE "...")` (the index's own checks read them this way)."""
    found = re.findall(r'set\s*\(\s*' + variable + r'\s*"([^"]*)"\s*\)', text, re.IGNORECASE)
    assert len(found) == 1, f"expected one set({variable} \"...\") in CMakeLists.txt, found {len(found)}"
    return found[0]


def repository_of(url):
    """(owner, repository name) of a github.com or raw.githubusercontent.com URL."""
    parts = urllib.parse.urlsplit(url.strip().rstrip("/")).path.strip("/").split("/")
    name = parts[1][:-4] if parts[1].endswith(".git") else parts[1]
    return parts[0], name


def local_file_of(url, entry):
    """The file of this repository that a raw.githubusercontent.com URL on the catalog's revision names."""
    split = urllib.parse.urlsplit(url)
    assert split.scheme == "https" and split.netloc == "raw.githubusercontent.com", url
    owner, name, revision, *path = split.path.strip("/").split("/")
    assert (owner, name) == repository_of(entry["scm_url"]), f"{url} is not in the repository of scm_url"
    assert revision == entry.get("scm_revision", "main"), f"{url} is not on the revision the index builds"
    return ROOT.joinpath(*path)


def assert_png(path):
    assert path.is_file(), f"{path.relative_to(ROOT)} does not exist"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path.relative_to(ROOT)} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 64 and height >= 64, f"{path.relative_to(ROOT)} is only {width}x{height}"


def test_catalog_entry_follows_the_schema(entry):
    assert entry["$schema"] == SCHEMA_URL
    assert {"$schema", "category", "scm_url"} <= set(entry)
    assert set(entry) <= set(SCHEMA_KEYS), f"keys the schema does not allow: {set(entry) - set(SCHEMA_KEYS)}"
    for key, value in entry.items():
        assert isinstance(value, SCHEMA_KEYS[key]), key
    assert entry.get("tier", 5) in (1, 3, 5)
    assert entry.get("scm_type", "git") in ("git", "local")
    assert all(isinstance(d, str) for d in entry.get("build_dependencies", []))


def test_extension_name_and_category(entry, cmake):
    assert not EXTENSION_NAME.lower().startswith("slicer")  # the extension's name must not start with Slicer
    project = re.findall(r"project\s*\(\s*([^\s\)]+)", cmake, re.IGNORECASE)
    assert project and project[0] == EXTENSION_NAME, "project() must match the catalog entry's file name"
    assert entry["category"] == "Segmentation"
    assert cmake_set(cmake, "EXTENSION_CATEGORY") == entry["category"]


def test_repository_name_starts_with_slicer(entry, cmake):
    scm_url = entry["scm_url"]
    assert urllib.parse.urlsplit(scm_url).scheme in ("git", "https")
    owner, name = repository_of(scm_url)
    assert name.startswith(REPOSITORY_PREFIXES), f"repository name {name!r} must start with 'Slicer'"
    assert repository_of(cmake_set(cmake, "EXTENSION_HOMEPAGE")) == (owner, name)


def test_icon_is_a_png_of_this_repository(entry, cmake):
    assert_png(local_file_of(cmake_set(cmake, "EXTENSION_ICONURL"), entry))


def test_screenshots_are_pngs_of_this_repository(entry, cmake):
    screenshots = cmake_set(cmake, "EXTENSION_SCREENSHOTURLS").split()
    assert screenshots, "the index wants at least one screenshot"
    for url in screenshots:
        assert_png(local_file_of(url, entry))


def test_license_and_dependencies(entry, cmake):
    assert (ROOT / "LICENSE").is_file() and (ROOT / "LICENSE").stat().st_size > 0
    depends = cmake_set(cmake, "EXTENSION_DEPENDS").split()
    depends = [] if depends == ["NA"] else depends
    assert depends == entry.get("build_dependencies", [])
    assert "PyTorch" in depends  # torch is installed through the PyTorch extension


def _tracked_files():
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                                timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed if name and (ROOT / name).is_file()]


def test_repository_is_under_the_index_size_limit():
    total = sum(path.stat().st_size for path in _tracked_files())
    assert total < 100 * 1024 * 1024, f"{total / 2**20:.1f} MB of tracked files; the index allows 100 MB"


# ---- what the extension package contains ------------------------------------------------------------------
def cmake_list(text, variable, module_name):
    """The entries of `set(VARIABLE a b ...)` with ${MODULE_NAME} substituted."""
    found = re.findall(r"set\s*\(\s*" + variable + r"\b([^)]*)\)", text)
    assert len(found) == 1, variable
    return [item.replace("${MODULE_NAME}", module_name) for item in found[0].split()]


def test_every_module_file_is_listed_for_packaging():
    """The module's CMakeLists lists files one by one: each .py, .ui and icon of the folder must be there."""
    folder = ROOT / "SliceAndConquer"
    text = (folder / "CMakeLists.txt").read_text(encoding="utf-8")
    name = re.findall(r"set\s*\(\s*MODULE_NAME\s+(\w+)\s*\)", text)[0]
    assert name == "SliceAndConquer"
    listed = set(cmake_list(text, "MODULE_PYTHON_SCRIPTS", name)) | set(
        cmake_list(text, "MODULE_PYTHON_RESOURCES", name))
    present = {str(p.relative_to(folder)) for p in folder.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.name != "CMakeLists.txt"}
    assert present <= listed, f"not packaged: {sorted(present - listed)}"
    assert all((folder / item).is_file() for item in listed), "listed but missing"


def test_every_lib_file_is_packaged():
    """SliceAndConquerLib takes every .py through a recursive glob; any other file it holds must be listed
    as a resource; the model files are copied from Resources/Models by a glob that skips hidden files."""
    folder = ROOT / "SliceAndConquerLib"
    text = (folder / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"file\s*\(\s*GLOB_RECURSE\s+MODULE_PYTHON_SCRIPTS\b[^)]*\*\.py", text)
    assert "WITH_SUBDIR" in text  # keeps models/, data/, ... as sub-packages
    resources = set(cmake_list(text, "MODULE_PYTHON_RESOURCES", "SliceAndConquerLib"))
    others = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.suffix not in (
        ".py", ".pyc") and p.name != "CMakeLists.txt" and "__pycache__" not in p.parts}
    assert others <= resources, f"not packaged: {sorted(others - resources)}"

    assert re.search(r"file\s*\(\s*GLOB\s+_model_files\b[^)]*\$\{_model_source_dir\}/\*", text)
    models = ROOT / "Resources" / "Models"
    shipped = {p.name for p in models.iterdir() if p.is_file() and not p.name.startswith(".")}
    for model in ("f2d", "f3d"):  # the weights the module loads, each with its model card
        assert {f"{model}.pt", f"{model}.json"} <= shipped
        assert (models / f"{model}.pt").read_bytes()[:2] == b"PK", f"{model}.pt is not a torch zip (LFS pointer?)"


def test_top_level_cmake_builds_both_folders(cmake):
    subdirectories = re.findall(r"add_subdirectory\s*\(\s*(\S+?)\s*\)", cmake)
    assert subdirectories == ["SliceAndConquer", "SliceAndConquerLib"]
    for required in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                     "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert required in cmake
