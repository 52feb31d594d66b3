"""The module widget's wiring of clicks and the background accept (SliceAndConquer/SliceAndConquer.py), on
slicer-core's scene with the real Lib logic. Qt is a stand-in that records what the widget asks of it (a
zero-delay timer, cursors, the status label), as in test_module_selftest.py; the MRML side is real."""
import sys
import types

import numpy as np
import pytest
from slicer_scene import slicer, slicer_scene  # noqa: F401  (the fixture)
import vtk

from SliceAndConquerLib.errors import InputError
from SliceAndConquerLib.slicer_logic import SliceAndConquerLogic
from test_module_selftest import load_module_file
from test_slicer_logic import CENTRE, Scene, toy_factory, world  # noqa: F401



class _Timers:
    """qt.QTimer: singleShot callbacks wait in `pending` until `run()`; timers are not started for real."""
    pending = []

    def __init__(self):
        self.active = False

    @classmethod
    def singleShot(cls, msec, callback):
        cls.pending.append(callback)

    @classmethod
    def run(cls):
        while cls.pending:
            cls.pending.pop(0)()

    def setInterval(self, msec):
        pass

    def connect(self, signal, slot):
        self.slot = slot

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class _App:
    def __init__(self):
        self.cursors = []

    def testingEnabled(self):
        return True

    def setOverrideCursor(self, cursor):
        self.cursors.append(cursor)

    def restoreOverrideCursor(self):
        self.cursors.pop()


class _Widget:
    """ScriptedLoadableModuleWidget stand-in: what the widget's methods under test use."""
    def __init__(self, parent=None):
        self.parent = types.SimpleNamespace(isEntered=True)


@pytest.fixture
def widget(monkeypatch, slicer_scene, toy_factory):  # noqa: F811
    qt = types.ModuleType("qt")
    qt.QTimer = _Timers
    qt.Qt = types.SimpleNamespace(WaitCursor="wait", BusyCursor="busy")
    _Timers.pending = []
    app = _App()
    monkeypatch.setattr(slicer, "app", app, raising=False)
    messages = []
    monkeypatch.setattr(slicer.util, "showStatusMessage", lambda text, msec=0: messages.append(text))
    module = load_module_file(monkeypatch, qt, _Widget)

    nodes = Scene(slicer_scene)
    w = module.SliceAndConquerWidget()
    button = lambda: types.SimpleNamespace(enabled=False, text="")  # noqa: E731
    w.ui = types.SimpleNamespace(statusLabel=types.SimpleNamespace(text=""), positiveButton=button(),
                                 startButton=button(), acceptButton=button(), resetSliceButton=button(),
                                 undoClickButton=button(), undoSliceButton=button(), jumpButton=button())
    w.ui.segmentSelector = types.SimpleNamespace(currentNode=lambda: nodes.segmentation, setCurrentNode=print,
                                                 currentSegmentID=lambda: "", setCurrentSegmentID=print)
    w._parameterNode = types.SimpleNamespace(positiveClicks=True, overwriteOtherSegments=False, segmentId="",
                                             inputVolume=nodes.volume, segmentation=nodes.segmentation)
    w._pollTimer = _Timers()
    w.snc = SliceAndConquerLogic()
    w.snc.on_error = w._onLogicError
    w.snc.placement.on_change = w._updateGui
    w.snc.start(nodes.volume, nodes.segmentation, session_factory=toy_factory)
    interaction = slicer_scene.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    interaction.SetPlaceModePersistence(0)
    w._createClickNodes()
    return types.SimpleNamespace(w=w, nodes=nodes, interaction=interaction, app=app, messages=messages)


def test_widget_rearms_place_mode_after_a_zero_delay_timer_and_on_the_same_shortcut(widget):
    w, interaction = widget.w, widget.interaction
    assert interaction.GetCurrentInteractionMode() == interaction.Place
    assert interaction.GetPlaceModePersistence() == 1
    interaction.SwitchToViewTransformMode()                      # a right-click in a view
    assert interaction.GetCurrentInteractionMode() == interaction.ViewTransform and _Timers.pending
    _Timers.run()                                                # the view has finished its event
    assert interaction.GetCurrentInteractionMode() == interaction.Place

    w.snc.placement.active = False                               # as if another tool had taken over
    interaction.SwitchToViewTransformMode()
    w._setPositive(True)                                         # "p" while already positive
    assert interaction.GetCurrentInteractionMode() == interaction.Place
    selection = widget.nodes.scene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    assert selection.GetActivePlaceNodeID() == w._clickNodes[0].GetID()
    w._setPositive(False)                                        # "n": the parameter node changes...
    assert w._parameterNode.positiveClicks is False
    w._onParameterNodeModified()                                 # ...and its observer re-arms
    assert selection.GetActivePlaceNodeID() == w._clickNodes[1].GetID()

    w._removeClickNodes()                                        # exit(): persistence as before
    assert interaction.GetPlaceModePersistence() == 0
    assert interaction.GetCurrentInteractionMode() == interaction.ViewTransform


def test_widget_shows_an_error_inside_a_click(widget, monkeypatch):
    w = widget.w
    shown = []
    monkeypatch.setattr(slicer.util, "errorDisplay",
                        lambda text, detailedText=None, **kwargs: shown.append((text, detailedText)))
    w.snc.click_ras = lambda *args, **kwargs: 1 / 0
    widget.nodes.show("Red", CENTRE)
    w._clickNodes[0].AddControlPointWorld(vtk.vtkVector3d(*world(CENTRE)))
    assert any("ZeroDivisionError" in message for message in widget.messages)
    _Timers.run()                                                # the details once the view is done
    assert shown and "ZeroDivisionError" in shown[0][0] and "Traceback" in shown[0][1]
    assert "ZeroDivisionError" in w.ui.statusLabel.text


def test_widget_accepts_in_the_background_with_progress_and_queued_clicks(widget):
    w, nodes = widget.w, widget.nodes
    nodes.show("Green", CENTRE)
    w.snc.click_ras(world(CENTRE), True, nodes.views["Green"])
    w.onAccept()
    assert w._busy and w._pollTimer.active and widget.app.cursors == ["busy"]
    assert "Computing the 3D result" in w.ui.statusLabel.text
    with pytest.raises(InputError):
        w.snc.undo_click()                                       # the logic is busy meanwhile
    for _ in range(100):                                         # the QTimer's timeouts
        if not w._pollTimer.active:
            break
        w._onPoll()
    assert not w._busy and not w._pollTimer.active and widget.app.cursors == []
    assert w.snc.session.t == 1 and nodes.segment(w.snc.segment_id).any()
    assert np.array_equal(nodes.segment(w.snc.segment_id), w.snc.session.mask3d)
    assert "Iteration t = 1" in w.ui.statusLabel.text and "Writes: editable" in w.ui.statusLabel.text
