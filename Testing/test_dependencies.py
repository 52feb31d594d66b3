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
                           requester))

    def old_pip_ensure(self, requirements, prompt=True, requester=None):  # no skip_packages
        self.calls.append(("old_pip_ensure", requirements))

    def torch(self, askConfirmation=False):
        self.calls.append(("PyTorchUtils", askConfirmation))
        return object()  # the torch module


def test_install_plan_with_pip_ensure():
    plan = dependencies.install_plan(["cv2", "acsconv", "torch"], Recorder().pip_ensure)
    assert plan == [("torch", "PyTorchUtils", None),
                    ("acsconv", "pip_install", "acsconv --no-deps"),
                    ("cv2", "pip_ensure", "opencv-contrib-python-headless")]
    text = dependencies.describe(plan)
    assert "PyTorch extension" in text and "acsconv --no-deps" in text


def test_install_plan_without_a_usable_pip_ensure_falls_back_to_pip_install_without_dependencies():
    fallback = [("cv2", "pip_install", "opencv-contrib-python-headless --no-deps")]
    assert dependencies.install_plan(["cv2"], None) == fallback
    assert dependencies.install_plan(["cv2"], Recorder().old_pip_ensure) == fallback  # cannot skip numpy


def test_install_calls_the_planned_installers_and_never_touches_bundled_packages(without):
    recorder = Recorder()
    without("torch", "acsconv", "cv2")  # still missing afterwards: the fakes install nothing
    still = dependencies.install(["torch", "acsconv", "cv2"], confirm=True, pip_ensure=recorder.pip_ensure,
                                 pip_install=recorder.pip_install, torch_installer=recorder.torch)
    assert still == ["torch", "acsconv", "cv2"]
    assert recorder.calls == [
        ("PyTorchUtils", True),
        ("pip_install", "acsconv --no-deps"),
        ("pip_ensure", ["opencv-contrib-python-headless"], list(dependencies.PROTECTED), False, "SliceAndConquer"),
    ]
    assert {"numpy", "SimpleITK", "vtk"} <= set(dependencies.PROTECTED)
    pip_args = " ".join(call[1] for call in recorder.calls if call[0] == "pip_install")
    assert not any(name in pip_args for name in ("numpy", "SimpleITK", "vtk"))


def test_install_with_pip_install_only(without):
    recorder = Recorder()
    without()
    assert dependencies.install(["cv2", "acsconv"], pip_install=recorder.pip_install) == []
    assert recorder.calls == [("pip_install", "acsconv --no-deps"),
                              ("pip_install", "opencv-contrib-python-headless --no-deps")]


def test_declined_torch_is_an_error():
    with pytest.raises(RuntimeError, match="PyTorch was not installed"):
        dependencies.install(["torch"], torch_installer=lambda askConfirmation: None,
                             pip_install=Recorder().pip_install)


def test_missing_pytorch_extension_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # import fails
    with pytest.raises(RuntimeError, match="PyTorch extension"):
        dependencies.install(["torch"], pip_install=Recorder().pip_install)


def test_default_pip_ensure_is_found_or_none():
    found = dependencies.default_pip_ensure()
    assert found is None or callable(found)
