"""The module's own self-test (SliceAndConquerTest in SliceAndConquer/SliceAndConquer.py), run here.

Inside Slicer, ctest runs it through `slicer.testing.runUnitTest`, a unittest loader and text runner
(each test_* method separately); *Reload and Test* calls `runTest()`. On the extensions build machines
torch, acsconv and OpenCV are absent: the click test must then be skipped with the reason, never fail.

What is not Slicer here: qt is an empty module, and `slicer.ScriptedLoadableModule`,
`slicer.parameterNodeWrapper` and `slicer.i18n` (Qt-bound, absent from slicer-core) are small stand-ins
(a unittest.TestCase with delayDisplay; a wrapper that keeps the class defaults). Everything the self-test
touches otherwise is real: slicer-core's scene, volumes, segmentations, slice nodes and slicer.util.
"""
import importlib.util
import pathlib
import sys
import types
import unittest

import pytest
from slicer_scene import slicer, slicer_scene  # noqa: F401  (the fixture)

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULE_FILE = ROOT / "SliceAndConquer" / "SliceAndConquer.py"


class _StandInTest(unittest.TestCase):
    displayed = []

    def delayDisplay(self, message, msec=None):
        self.displayed.append(str(message))


class _StandInModule:
    pass


class _StandInWidget:
    pass


class _StandInLogic:
    def getParameterNode(self):
        return slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")


def _parameter_node_wrapper(cls):
    def __init__(self, parameterNode):
        self.parameterNode = parameterNode

    cls.__init__ = __init__  # the fields keep their class defaults, enough for the self-test
    return cls


def load_module_file(monkeypatch, qt, widget_class):
    """The module file imported as Slicer would, with stand-ins only for Qt and the Qt-bound parts of
    slicer (`qt` the stand-in qt module, `widget_class` the ScriptedLoadableModuleWidget base)."""
    stand_ins = {
        "qt": qt,
        "slicer.i18n": types.SimpleNamespace(tr=lambda text: text, translate=lambda context, text: text),
        "slicer.parameterNodeWrapper": types.SimpleNamespace(Choice=lambda choices: choices,
                                                             parameterNodeWrapper=_parameter_node_wrapper),
        "slicer.ScriptedLoadableModule": types.SimpleNamespace(
            ScriptedLoadableModule=_StandInModule, ScriptedLoadableModuleWidget=widget_class,
            ScriptedLoadableModuleLogic=_StandInLogic, ScriptedLoadableModuleTest=_StandInTest),
    }
    for name, stand_in in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the module may add the clone root
    monkeypatch.delitem(sys.modules, "SliceAndConquer", raising=False)
    spec = importlib.util.spec_from_file_location("SliceAndConquer", MODULE_FILE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture
def module(monkeypatch, slicer_scene):  # noqa: F811
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(testingEnabled=lambda: True), raising=False)
    loaded = load_module_file(monkeypatch, types.ModuleType("qt"), _StandInWidget)
    _StandInTest.displayed = []
    return loaded


def _run_as_ctest_does(test_class):
    suite = unittest.TestLoader().loadTestsFromTestCase(test_class)
    result = unittest.TestResult()
    suite.run(result)
    return result


def _hide_packages(monkeypatch, names):
    from SliceAndConquerLib import dependencies

    monkeypatch.setattr(dependencies, "missing_packages", lambda packages=None: list(names))


def test_without_torch_the_click_test_is_skipped_with_the_reason(module, monkeypatch):
    _hide_packages(monkeypatch, ["torch", "acsconv", "cv2"])
    result = _run_as_ctest_does(module.SliceAndConquerTest)
    assert result.testsRun == 2 and not result.failures and not result.errors, result.errors + result.failures
    assert result.wasSuccessful()
    ((skipped, reason),) = result.skipped
    assert skipped._testMethodName == "test_ClickAcceptJumpUndo"
    assert "torch, acsconv, cv2" in reason and "Start" in reason


def test_reload_and_test_reports_the_skip_instead_of_failing(module, monkeypatch):
    _hide_packages(monkeypatch, ["cv2"])
    module.SliceAndConquerTest().runTest()  # raises nothing
    assert any(line.startswith("Skipped test_ClickAcceptJumpUndo") and "cv2" in line
               for line in _StandInTest.displayed), _StandInTest.displayed
    assert "Test passed" in _StandInTest.displayed  # test_ModuleLoads still ran


def test_with_the_packages_the_self_test_passes_headless(module):
    for name in ("torch", "cv2", "acsconv"):
        pytest.importorskip(name)
    result = _run_as_ctest_does(module.SliceAndConquerTest)
    assert not result.skipped and result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun == 2
