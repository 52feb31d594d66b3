"""Which packages are missing, and how each would be installed (nothing is installed here)."""
import importlib

import pytest

from SliceAndConquerLib import dependencies


@pytest.fixture
def without(monkeypatch):
    """Make some import names fail to import, as if they were not installed."""
    def hide(*names, error=ImportError):
        real = importlib.import_module

        def fake(name, *args, **kwargs):
            if name in names:
                raise error(f"No module named {name!r}")
            return real(name, *args, **kwargs)

        monkeypatch.setattr(dependencies.importlib, "import_module", fake)

    return hide


def test_nothing_missing_when_everything_imports(without):
    without()
    assert dependencies.missing_packages() == []


def test_missing_packages_names_what_cannot_be_imported(without):
    without("acsconv", "cv2")
    assert dependencies.missing_packages() == ["acsconv", "cv2"]


def test_a_broken_native_library_counts_as_missing(without):
    without("cv2", error=OSError)  # e.g. libGL.so.1 missing
    assert dependencies.missing_packages() == ["cv2"]


class Recorder:
    def __init__(self):
        self.calls = []

    def pip_install(self, requirements):
        self.calls.append(("pip_install", requirements))

    def pip_ensure(self, requirements, constraints=None, skip_packages=None, prompt_install=True,
                   prompt_restart=True, requester=None, skip_in_testing=True, show_progress=True):
        self.calls.append(("pip_ensure", [str(r) for r in requirements], skip_packages, prompt_install,
                           prompt_restart, requester))

    def old_pip_ensure(self, requirements, prompt=True, requester=None):  # no skip_packages
        self.calls.append(("old_pip_ensure", requirements))

    def execute_module(self, module, args):
        self.calls.append(("python -m", module, list(args)))


def test_install_plan_with_pip_ensure():
    plan = dependencies.install_plan(["cv2", "acsconv", "torch"], Recorder().pip_ensure)
    assert plan == [("torch", "light-the-torch", "torch>=2.1"),
                    ("acsconv", "pip_install", "acsconv --no-deps"),
                    ("cv2", "pip_ensure", "opencv-contrib-python-headless")]
    text = dependencies.describe(plan)
    assert len(text.splitlines()) == 3  # one line per package: the whole plan goes into the one question
    assert "light-the-torch" in text and "no torchvision" in text and "acsconv --no-deps" in text


def test_install_plan_without_a_usable_pip_ensure_falls_back_to_pip_install_without_dependencies():
    """Slicer 5.8 and 5.10 have no pip_ensure: slicer.util.pip_install, without dependencies."""
    fallback = [("cv2", "pip_install", "opencv-contrib-python-headless --no-deps")]
    assert dependencies.install_plan(["cv2"], None) == fallback
    assert dependencies.install_plan(["cv2"], Recorder().old_pip_ensure) == fallback  # cannot skip numpy


def test_install_calls_the_planned_installers_asks_nothing_and_never_touches_bundled_packages(without):
    recorder = Recorder()
    without("torch", "acsconv", "cv2", "light_the_torch")  # still missing afterwards: the fakes install nothing
    still = dependencies.install(["torch", "acsconv", "cv2"], pip_ensure=recorder.pip_ensure,
                                 pip_install=recorder.pip_install, execute_module=recorder.execute_module)
    assert still == ["torch", "acsconv", "cv2"]
    assert recorder.calls == [
        ("pip_install", "light-the-torch>=0.5"),
        ("python -m", "light_the_torch", ["install", "torch>=2.1"]),
        ("pip_install", "acsconv --no-deps"),
        # prompt_install / prompt_restart False: the user was asked once, before install()
        ("pip_ensure", ["opencv-contrib-python-headless"], list(dependencies.PROTECTED), False, False,
         "SliceAndConquer"),
    ]
    assert {"numpy", "SimpleITK", "vtk"} <= set(dependencies.PROTECTED)
    everything = " ".join(str(call) for call in recorder.calls)
    assert "torchvision" not in everything
    pip_args = " ".join(call[1] for call in recorder.calls if call[0] == "pip_install")
    assert not any(name in pip_args for name in ("numpy", "SimpleITK", "vtk"))


def test_light_the_torch_is_installed_only_when_missing(monkeypatch):
    recorder = Recorder()
    real = importlib.import_module
    monkeypatch.setattr(dependencies.importlib, "import_module",  # as if light_the_torch were installed
                        lambda name, *a, **k: object() if name == "light_the_torch" else real(name, *a, **k))
    assert dependencies.install(["torch"], pip_install=recorder.pip_install,
                                execute_module=recorder.execute_module) == []
    assert recorder.calls == [("python -m", "light_the_torch", ["install", "torch>=2.1"])]


def test_install_with_pip_install_only(without):
    recorder = Recorder()
    without()
    assert dependencies.install(["cv2", "acsconv"], pip_install=recorder.pip_install) == []
    assert recorder.calls == [("pip_install", "acsconv --no-deps"),
                              ("pip_install", "opencv-contrib-python-headless --no-deps")]


def test_the_install_code_never_names_a_nonexistent_slicer_module_nor_torchvision():
    """slicer.pydeps never existed; PyTorchUtils.installTorch would add torchvision and ask again."""
    import inspect

    source = inspect.getsource(dependencies)
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    body = code.split('"""', 2)[2]  # after the module docstring, which explains why
    assert "pydeps" not in code and "installTorch" not in body and "torchvision" not in body.replace(
        "no torchvision", "")


def test_default_pip_ensure_is_slicer_packaging_or_none(monkeypatch):
    import sys
    import types

    assert dependencies.default_pip_ensure() is None or callable(dependencies.default_pip_ensure())
    fake = types.ModuleType("slicer.packaging")
    fake.pip_ensure = Recorder().pip_ensure
    monkeypatch.setitem(sys.modules, "slicer.packaging", fake)
    assert dependencies.default_pip_ensure() == fake.pip_ensure  # Slicer 5.12 and the preview
    monkeypatch.setitem(sys.modules, "slicer.packaging", None)   # 5.8 / 5.10: no such module
    assert dependencies.default_pip_ensure() is None


def test_default_execute_module_uses_what_this_slicer_has(monkeypatch):
    """executePythonModule on Slicer >= 5.11, _executePythonModule on 5.8 / 5.10."""
    import types

    calls = []
    old = types.SimpleNamespace(_executePythonModule=lambda module, args: calls.append(("old", module, args)))
    new = types.SimpleNamespace(executePythonModule=lambda module, args: calls.append(("new", module, args)),
                                _executePythonModule=old._executePythonModule)
    slicer = pytest.importorskip("slicer")
    for util, expected in ((old, "old"), (new, "new")):
        monkeypatch.setattr(slicer, "util", util, raising=False)
        monkeypatch.setitem(__import__("sys").modules, "slicer.util", util)
        dependencies.default_execute_module()("light_the_torch", ["install", "torch>=2.1"])
        assert calls[-1] == (expected, "light_the_torch", ["install", "torch>=2.1"])
