"""A headless MRML scene for testing Slicer code without the Slicer application (slicer-core).

Builds what `slicer.util` helpers and our logic expect from a running Slicer (see SLICER_NOTES.md):
a vtkMRMLScene, an application logic with colour / Volumes / Segmentations / Markups logics, the slice
orientation presets, the Red/Yellow/Green slice views and the crosshair, then points `slicer.mrmlScene`
and a `slicer.modules` shim at them. Use the `slicer_scene` fixture, or call `build_scene(monkeypatch)`
from your own fixture; monkeypatch undoes the `slicer.*` globals after each test.

    from slicer_scene import slicer_scene  # noqa: F401  (re-export the fixture into a test module)
"""
from __future__ import annotations

import types
from dataclasses import dataclass

import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install slicer-core)")
if not hasattr(slicer, "vtkMRMLScene"):  # the unrelated PyPI package "slicer" has the same name
    pytest.skip("the installed `slicer` package is not slicer-core", allow_module_level=True)
import vtk  # noqa: E402

VIEWS = (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal"))


@dataclass
class SlicerScene:
    scene: object        # vtkMRMLScene
    app_logic: object    # vtkSlicerApplicationLogic
    modules: object      # the slicer.modules shim: .volumes/.segmentations/.markups/.colors .logic()
    views: dict          # layout name ("Red", "Yellow", "Green") -> vtkMRMLSliceNode
    crosshair: object    # vtkMRMLCrosshairNode


def _module(logic):
    return types.SimpleNamespace(logic=lambda: logic)


def build_scene(monkeypatch, home_directory=None) -> SlicerScene:
    """Create the scene and install it as `slicer.mrmlScene` / `slicer.modules` (undone by monkeypatch)."""
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.SetSliceLogics(vtk.vtkCollection())
    app.SetViewLogics(vtk.vtkCollection())
    if home_directory:  # only quietens "HomeDirectory is not set"; the default colour nodes need no files
        app.SetHomeDirectory(str(home_directory))

    # The colour logic needs the app logic before the scene; setting the scene adds the default colour
    # nodes. The Volumes logic looks it up as the "Colors" module logic when it creates display nodes.
    colors = slicer.vtkSlicerColorLogic()
    colors.SetMRMLApplicationLogic(app)
    colors.SetMRMLScene(scene)
    app.SetColorLogic(colors)
    app.SetModuleLogic("Colors", colors)

    logics = {"colors": colors}
    for name, cls in (("Volumes", slicer.vtkSlicerVolumesLogic),
                      ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
                      ("Markups", slicer.vtkSlicerMarkupsLogic)):
        logic = cls()
        logic.SetMRMLApplicationLogic(app)
        logic.SetMRMLScene(scene)
        app.SetModuleLogic(name, logic)
        logics[name.lower()] = logic

    # Slice nodes get their orientation presets from the scene's default slice node.
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    views = {}
    for layout_name, orientation in VIEWS:
        node = scene.CreateNodeByClass("vtkMRMLSliceNode")
        node.UnRegister(None)  # CreateNodeByClass returns an owned reference; Python holds its own
        node.SetName(layout_name)
        node.SetLayoutName(layout_name)
        node.SetSingletonTag(layout_name)
        node.SetOrientation(orientation)
        views[layout_name] = scene.AddNode(node)

    crosshair = scene.CreateNodeByClass("vtkMRMLCrosshairNode")
    crosshair.UnRegister(None)
    crosshair.SetName("Crosshair")
    crosshair.SetSingletonTag("default")
    crosshair = scene.AddNode(crosshair)

    modules = types.SimpleNamespace(**{name: _module(logic) for name, logic in logics.items()})
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "modules", modules, raising=False)
    return SlicerScene(scene, app, modules, views, crosshair)


@pytest.fixture
def slicer_scene(monkeypatch, tmp_path):
    """A fresh headless Slicer scene per test (see build_scene)."""
    built = build_scene(monkeypatch, home_directory=tmp_path)
    yield built
    built.scene.Clear(1)
