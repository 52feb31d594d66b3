"""Slicer's own slice views, rendered offscreen without the application (slicer-core + EGL).

Each `SliceView` is what a Slicer slice widget holds, minus Qt: an offscreen vtkRenderWindow and renderer,
a vtkMRMLSliceLogic on the scene's slice node (its blended image through vtkImageMapper / vtkActor2D), a
vtkMRMLDisplayableManagerGroup with the crosshair, model-slice, segmentation (2D) and markups displayable
managers, and a vtkMRMLSliceViewInteractorStyle on the interactor, so that `click()` goes through the same
event path as a user's mouse: the markups widget in place mode puts the point at
`sliceNode.GetXYToRAS() * (x, y, 0, 1)` and fires PointPositionDefinedEvent.

    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # before the first window
    views = build_slice_views(built)          # built: slicer_scene.SlicerScene; Red, Yellow, Green
    views["Red"].show_volume(volume)
    views["Red"].click(120, 130)              # left click at display position (x, y), origin bottom left
    views["Red"].save_png(path); views["Red"].pixel(x, y)
"""
from __future__ import annotations

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # no X display: EGL + Mesa

import numpy as np  # noqa: E402
import slicer  # noqa: E402
import vtk  # noqa: E402
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy  # noqa: E402

DISPLAYABLE_MANAGERS = ("vtkMRMLCrosshairDisplayableManager", "vtkMRMLModelSliceDisplayableManager",
                        "vtkMRMLSegmentationsDisplayableManager2D", "vtkMRMLMarkupsDisplayableManager")


class SliceView:
    """One offscreen slice view on an existing slice node of the scene."""

    def __init__(self, scene, app_logic, slice_node, size=(256, 256)):
        self.slice_node = slice_node
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetMultiSamples(0)
        self.window.SetSize(*size)
        self.renderer = vtk.vtkRenderer()
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        self.window.AddRenderer(self.renderer)
        self.interactor = vtk.vtkGenericRenderWindowInteractor()  # no platform window system (X) behind it
        self.interactor.SetRenderWindow(self.window)
        self.interactor.SetRecognizeGestures(False)  # else VTK drops the first button release (multitouch)

        self.logic = slicer.vtkMRMLSliceLogic()
        self.logic.SetMRMLApplicationLogic(app_logic)
        self.logic.SetMRMLScene(scene)
        self.logic.SetSliceNode(slice_node)
        app_logic.GetSliceLogics().AddItem(self.logic)

        # The slice image (background/foreground/label blend) as a 2D actor behind everything else.
        self.image_mapper = vtk.vtkImageMapper()
        self.image_mapper.SetColorWindow(255)
        self.image_mapper.SetColorLevel(127.5)
        self.image_actor = vtk.vtkActor2D()
        self.image_actor.SetMapper(self.image_mapper)
        self.image_actor.GetProperty().SetDisplayLocationToBackground()
        self.renderer.AddViewProp(self.image_actor)
        self._connect_image()
        self.logic.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda *_: self._connect_image())

        factory = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
        factory.SetMRMLApplicationLogic(app_logic)
        for name in DISPLAYABLE_MANAGERS:
            if not factory.IsDisplayableManagerRegistered(name):
                factory.RegisterDisplayableManager(name)
        self.managers = slicer.vtkMRMLDisplayableManagerGroup()
        self.managers.Initialize(factory, self.renderer)
        self.managers.SetMRMLDisplayableNode(slice_node)

        self.style = slicer.vtkMRMLSliceViewInteractorStyle()
        self.style.SetDisplayableManagers(self.managers)
        self.style.SetSliceLogic(self.logic)
        self.interactor.SetInteractorStyle(vtk.vtkInteractorStyleUser())  # a passive one: VTK's default camera style takes button events
        self.style.SetInteractor(self.interactor)  # it observes the interactor's events itself
        self.interactor.Initialize()
        self.logic.ResizeSliceNode(*size)

    def _connect_image(self):
        connection = self.logic.GetImageDataConnection()
        if connection is not None and self.image_mapper.GetInputConnection(0, 0) is not connection:
            self.image_mapper.SetInputConnection(connection)

    @property
    def size(self):
        return tuple(self.window.GetSize())

    def show_volume(self, volume_node, fit=True):
        """`volume_node` as this view's background; fit the view to it."""
        self.logic.GetSliceCompositeNode().SetBackgroundVolumeID(volume_node.GetID())
        if fit:
            self.logic.FitSliceToBackground(*self.size)
            self.slice_node.UpdateMatrices()

    # ---- the mouse --------------------------------------------------------------------------------
    def _event(self, method, x, y, repeat=0):
        # The interactor's own event methods, as a GUI toolkit calls them.
        self.interactor.SetEventPosition(int(x), int(y))
        self.interactor.SetRepeatCount(repeat)
        if hasattr(self.interactor, method):
            getattr(self.interactor, method)()
        else:  # e.g. LeftButtonDoubleClickEvent, which VTK's Qt adapter invokes after the second press
            self.interactor.InvokeEvent(getattr(vtk.vtkCommand, method))

    def click(self, x, y, button="Left", double=False):
        """A mouse click at display position (x, y) (pixels, origin bottom left), through the interactor;
        `double` sends the second click of a double-click as Slicer's views get it."""
        self._event("MouseMoveEvent", x, y)
        self._event(f"{button}ButtonPressEvent", x, y)
        self._event(f"{button}ButtonReleaseEvent", x, y)
        if double:
            self._event(f"{button}ButtonPressEvent", x, y, 1)
            self._event(f"{button}ButtonDoubleClickEvent", x, y, 1)
            self._event(f"{button}ButtonReleaseEvent", x, y)

    def drag(self, start, end, button="Right", steps=5):
        """Press at `start`, move to `end` in `steps`, release (a right-drag zooms a Slicer slice view)."""
        self._event("MouseMoveEvent", *start)
        self._event(f"{button}ButtonPressEvent", *start)
        for step in range(1, steps + 1):
            t = step / steps
            self._event("MouseMoveEvent", start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
        self._event(f"{button}ButtonReleaseEvent", *end)

    def display_of_ras(self, ras):
        """Display position (x, y) and depth (mm off the plane) of a world point in this view."""
        xy_to_ras = slicer.util.arrayFromVTKMatrix(self.slice_node.GetXYToRAS())
        xyz = np.linalg.solve(xy_to_ras, np.append(np.asarray(ras, float), 1.0))[:3]
        return xyz

    def ras_of_display(self, x, y):
        xy_to_ras = slicer.util.arrayFromVTKMatrix(self.slice_node.GetXYToRAS())
        return (xy_to_ras @ np.array([x, y, 0.0, 1.0]))[:3]

    # ---- pixels -----------------------------------------------------------------------------------
    def render(self):
        self.window.Render()

    def pixels(self) -> np.ndarray:
        """The rendered view as uint8 RGB [row, column, 3], row 0 at the bottom (display y)."""
        self.render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        width, height, _ = image.GetDimensions()
        return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[:, :, :3].copy()

    def pixel(self, x, y) -> tuple:
        return tuple(int(v) for v in self.pixels()[int(y), int(x)])

    def save_png(self, path):
        self.render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.ReadFrontBufferOff()
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(path))
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
        return path

    def close(self):
        self.managers.SetMRMLDisplayableNode(None)
        self.window.Finalize()


def build_slice_views(built, size=(256, 256)) -> dict:
    """Red, Yellow and Green `SliceView`s on the scene of a `slicer_scene.SlicerScene`."""
    return {name: SliceView(built.scene, built.app_logic, node, size) for name, node in built.views.items()}


VIEW_COLORS = {"Red": (243, 74, 51), "Yellow": (237, 213, 76), "Green": (110, 176, 75)}  # Slicer's view bars


def save_side_by_side(views, path, names=("Red", "Yellow", "Green"), gap=4, bar=6):
    """The views' renderings in one PNG, left to right, each under a bar of its Slicer view colour."""
    images = [views[name].pixels()[::-1] for name in names]  # top row first for the file
    height = max(image.shape[0] for image in images) + bar
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for name, image in zip(names, images):
        canvas[:bar, x:x + image.shape[1]] = VIEW_COLORS.get(name, (128, 128, 128))
        canvas[bar:bar + image.shape[0], x:x + image.shape[1]] = image
        x += image.shape[1] + gap
    write_png(canvas, path)
    return path


def write_png(rgb_top_first, path):
    """uint8 RGB [row, column, 3], row 0 at the top, to a PNG file."""
    height, width, _ = rgb_top_first.shape
    image = vtk.vtkImageData()
    image.SetDimensions(width, height, 1)
    array = numpy_to_vtk(np.ascontiguousarray(rgb_top_first[::-1]).reshape(-1, 3),
                                                deep=True, array_type=vtk.VTK_UNSIGNED_CHAR)
    image.GetPointData().SetScalars(array)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
