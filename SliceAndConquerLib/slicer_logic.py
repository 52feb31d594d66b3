"""The Slicer side of SliceAndConquer without Qt: MRML nodes <-> the numpy Session, and the scripting API.

Data flows one way: volume + segment -> arrays [k, j, i] + spacing -> Session -> arrays -> the segment.
Everything here works with real MRML nodes in plain pytest (slicer-core); the module widget only maps
Qt signals onto these methods. From Slicer's Python console::

    from SliceAndConquerLib.slicer_logic import SliceAndConquerLogic
    logic = SliceAndConquerLogic()
    logic.start(getNode("MRHead"), getNode("Segmentation"))   # creates a segment if none is given
    red = getNode("vtkMRMLSliceNodeRed")
    logic.click_ras([1.5, -20.0, 30.2], positive=True, slice_node=red)  # world RAS, e.g. from a markup
    logic.accept()        # 3D result into the segment; the matching view jumps to the next slice
    logic.status()

Long work off the main thread: `accept()` is `compute_accept()` (session.accept_slice + recommend: numpy and
torch only, safe in a worker thread) followed by `finish_accept()` (MRML writes and view jumps: main thread
only). `accept_in_background()` runs the first in a `threading.Thread`; call `poll_accept()` from a timer
(e.g. a 100 ms QTimer) and `finish_background_accept()` on the main thread once it returns False. Inside
Slicer the worker only runs while the main thread releases the GIL: PythonQt keeps it held in the Qt event
loop, so a plain thread would crawl (~100x slower). `poll_accept(hand_over_s)` therefore waits on the worker
for most of each timer period (a wait releases the GIL), leaving the rest to the GUI; `accept_progress()`
says how long it has run. While it runs, `busy` is True: points placed in the observed markups nodes are
queued (never lost) and replayed afterwards, and the other methods refuse with an InputError.

Clicks are captured by two markups nodes in persistent place mode (`start_placement`); Slicer ends place
mode on a right-click or double-click, and the logic puts it back (`placement.ClickPlacement`). Errors in
observers never vanish: they are logged with their traceback, kept in `last_error`, and passed to
`on_error(message, exception)` when a GUI set it. Writes follow the Segment Editor's masking settings
(`edit_rules.py`).

Coordinates: points are world RAS (markups' `GetNthControlPointPositionWorld`); the volume's parent
transform (linear only) is undone before RAS -> IJK; numpy arrays are [k, j, i]. A view's slice offset
is in millimetres and is never used as an index.
"""
from __future__ import annotations

import inspect
import logging
import threading
import time

import numpy as np
import slicer
import vtk

from . import edit_rules as rules_module
from .errors import InputError
from .pipelines import best_pipeline
from .placement import ClickPlacement
from .session import Plane, Session

# A view counts as showing a volume axis when its normal is within ~8 degrees of that axis.
OBLIQUE_TOLERANCE = 0.99
VIEW_ORDER = ("Red", "Yellow", "Green")


class ObliqueViewError(InputError):
    """A click in a view that shows no plane of the volume's grid; `slice_node` is that view, so a GUI can
    offer `rotate_view_to_volume(slice_node)`."""

    def __init__(self, message, slice_node=None):
        super().__init__(message)
        self.slice_node = slice_node


def _accepts_keyword(function, name) -> bool:
    """Whether `function` takes the keyword argument `name` (or any keyword via **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return False
    return any(p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               or p.kind == p.VAR_KEYWORD for p in parameters)


class SliceAndConquerLogic:
    """Interactive Slice-and-Conquer segmentation of one segment, driven by clicks in slice views.

    Scripting API (all points in world RAS, all planes as `Plane(axis, index)` of the numpy array
    [k, j, i]):

    - `start(volume, segmentation, segment_id=None)`  begin; the segment's content is the starting mask
    - `click_ras(ras, positive=True, slice_node=None)`  one click -> f2D -> preview of that slice
    - `undo_click()`, `reset_slice()`                  the 2D stage; the segment follows exactly
    - `accept()`                                       f3D -> the segment; jump to the recommended slice
    - `compute_accept()` + `finish_accept()`           the same in two parts: worker thread, then main thread
    - `accept_in_background()`, `accept_running`, `finish_background_accept()`  the worker, for a GUI
    - `undo_slice()`                                   undo the last accept exactly
    - `status()`                                       a dict for a status line or the console
    - `on_point_defined(markups, positive)`, `add_markups_observers(pos, neg)`  clicks from markups
    - `prune_markups(pos, neg)`                        markups show exactly the current slice's clicks
    - `close()`                                        forget the session (scene close), drop observers
    - `plane_for_view(slice_node)`, `rotate_view_to_volume(slice_node)`, `ras_to_ijk`, `ijk_to_ras`

    Errors the user can act on (oblique view, click outside the volume, ...) raise `InputError`.
    """

    def __init__(self):
        self.session: Session | None = None
        self.volume_node = None
        self.segmentation_node = None
        self.segment_id: str | None = None
        self.pipeline_name: str | None = None
        self.overwrite_other_segments = False
        self.recommendation: Plane | None = None
        self.last_error: str | None = None  # the last error of a markups observer (they cannot raise)
        self.last_exception: Exception | None = None  # the same error as an object (ObliqueViewError...)
        self.on_error = None                # on_error(message, exception): observer errors, for a GUI
        self.placement = ClickPlacement(on_error=self._report_error)
        self.module_edit_rules = None       # EditRules given to start(); None: from overwrite_other_segments
        self._writer = None                 # edit_rules.SegmentWriter of the session's segment
        self.device: str | None = None
        self.busy = False                   # True while compute_accept() runs in a worker thread
        self.pending_clicks: list = []      # (ras, view, positive) placed while busy; replayed afterwards
        self._observations: list = []       # (markups node, observer tag)
        self._computed = None               # (session, recommendation) from compute_accept()
        self._job = None                    # the background accept: {"thread", "session", "error", "started"}

    # ---- starting ---------------------------------------------------------------------------
    def start(self, volume_node, segmentation_node, segment_id=None, session_factory=None,
              overwrite_other_segments=False, device=None, edit_rules=None) -> Session:
        """Start a session on `volume_node`, writing into `segment_id` of `segmentation_node`.

        The segment is created when `segment_id` is None or not in the segmentation; its current content
        becomes the starting 3D mask. `session_factory(image, spacing, existing_mask=None) -> Session`
        defaults to the best installed pipeline (`pipelines.best_pipeline()`). Writes follow the Segment
        Editor's masking settings when the scene has a Segment Editor node (see `edit_rules()`); else
        `edit_rules` (an `edit_rules.EditRules`), else `overwrite_other_segments`: True overwrites other
        segments (exactly restored on undo), False never touches their voxels.
        `device` ("auto", "cpu", "cuda", "mps") is checked first (InputError if that accelerator is absent)
        and passed to the factory only if it takes a `device` argument.
        """
        self._require_idle()
        if volume_node is None or segmentation_node is None:
            raise InputError("choose a volume and a segmentation")
        if device not in (None, "auto"):
            from .models.weights import pick_device

            pick_device(device)  # a clear InputError when e.g. CUDA was asked for and is missing
        self.session = None  # a start that fails leaves no half-started session behind
        self._computed = None
        self.volume_node, self.segmentation_node = volume_node, segmentation_node
        self._world_to_local()  # refuse a non-linear parent transform now, not at the first click
        self._check_segmentation_transform()

        segmentation = segmentation_node.GetSegmentation()
        if segmentation.GetNumberOfSegments() == 0:
            # A new segmentation: labelmaps on the volume's grid, so writes and reads are lossless.
            segmentation_node.SetSourceRepresentationToBinaryLabelmap()
            segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        if not segmentation_node.GetDisplayNode():
            segmentation_node.CreateDefaultDisplayNodes()
        if segment_id is None or segmentation.GetSegment(segment_id) is None:
            segment_id = segmentation.AddEmptySegment(segment_id or "")
        self.segment_id = segment_id

        image = slicer.util.arrayFromVolume(volume_node)             # [k, j, i]
        spacing = tuple(reversed(volume_node.GetSpacing()))            # (i, j, k) -> (k, j, i)
        existing = self._read_segment(segment_id)
        if session_factory is None:
            self.pipeline_name, session_factory, _ = best_pipeline()
        else:
            self.pipeline_name = getattr(session_factory, "__name__", type(session_factory).__name__)
        options = {"device": device} if device is not None and _accepts_keyword(session_factory, "device") else {}
        self.session = session_factory(image, spacing, existing_mask=existing if existing.any() else None,
                                       **options)
        self.device = device
        self.overwrite_other_segments = bool(overwrite_other_segments)
        self.module_edit_rules = edit_rules
        self._writer = rules_module.SegmentWriter(
            segment_id, lambda: list(self.segmentation_node.GetSegmentation().GetSegmentIDs()),
            self._read_segment, self._write_segment, self._segment_visible, image)
        self.recommendation = None
        self.last_error = self.last_exception = None
        return self.session

    def close(self):
        """Forget the session (e.g. the scene is closing): observers off, place mode and its persistence
        restored, queued clicks and a background accept dropped (its worker finishes on its own session
        object and nothing is written)."""
        self.remove_markups_observers()
        self.stop_placement()
        self.session = self.recommendation = self._writer = None
        self._computed = self._job = None
        self.busy = False
        self.pending_clicks = []

    def _check_segmentation_transform(self):
        """slicer.util's labelmap import/export is only consistent when the segmentation sits under the
        volume's parent transform (with different transforms the segment lands in the wrong place)."""
        volume_transform = self.volume_node.GetTransformNodeID()
        if self.segmentation_node.GetTransformNodeID() == volume_transform:
            return
        if (self.segmentation_node.GetTransformNodeID() is None
                and self.segmentation_node.GetSegmentation().GetNumberOfSegments() == 0):
            logging.info("SliceAndConquer: placing the new segmentation under the volume's transform")
            self.segmentation_node.SetAndObserveTransformNodeID(volume_transform)
            return
        raise InputError("the segmentation and the volume are under different transforms; put the "
                         "segmentation under the volume's transform: "
                         "segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())")

    def _require_session(self) -> Session:
        if self.session is None:
            raise InputError("no Slice-and-Conquer session: call start(volume, segmentation) first")
        return self.session

    def _require_idle(self):
        if self.busy:
            raise InputError("the 3D result is still being computed; try again in a moment")

    # ---- geometry -----------------------------------------------------------------------------
    def _world_to_local(self) -> np.ndarray:
        """4x4 from world RAS to the volume's own RAS (undoes its parent transform, linear only)."""
        transform = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, self.volume_node.GetParentTransformNode(),
                                                             transform)
        linear = vtk.vtkTransform()
        if not slicer.vtkMRMLTransformNode.IsGeneralTransformLinear(transform, linear):
            raise InputError("the volume is under a non-linear transform; harden it first "
                             "(Transforms module > Harden transform)")
        return slicer.util.arrayFromVTKMatrix(linear.GetMatrix())

    def _world_to_ijk(self) -> np.ndarray:
        """4x4 from world RAS to continuous IJK of the volume (voxel centres at integers)."""
        ras_to_ijk = vtk.vtkMatrix4x4()
        self._require_volume().GetRASToIJKMatrix(ras_to_ijk)
        return slicer.util.arrayFromVTKMatrix(ras_to_ijk) @ self._world_to_local()

    def _require_volume(self):
        if self.volume_node is None:
            raise InputError("no volume: call start(volume, segmentation) first")
        return self.volume_node

    def ras_to_ijk(self, ras) -> np.ndarray:
        """World RAS -> continuous IJK (i, j, k) of the volume, through its parent transform."""
        return (self._world_to_ijk() @ np.append(np.asarray(ras, float), 1.0))[:3]

    def ijk_to_ras(self, ijk) -> np.ndarray:
        """Continuous IJK (i, j, k) -> world RAS, through the volume's parent transform."""
        return np.linalg.solve(self._world_to_ijk(), np.append(np.asarray(ijk, float), 1.0))[:3]

    def plane_for_view(self, slice_node) -> int:
        """The numpy axis (0 = k, 1 = j, 2 = i) perpendicular to the view, whatever its name says.

        The view normal (column 2 of SliceToRAS) is mapped into IJK; each component is scaled by that
        IJK axis's voxel length in mm, so with anisotropic spacing the test is on angles, not voxels.
        Raises InputError for an oblique view.
        """
        world_to_ijk = self._world_to_ijk()[:3, :3]
        normal = slicer.util.arrayFromVTKMatrix(slice_node.GetSliceToRAS())[:3, 2]
        voxel_mm = np.linalg.norm(np.linalg.inv(world_to_ijk), axis=0)  # mm per step along i, j, k
        direction = (world_to_ijk @ normal) * voxel_mm
        ijk_axis = int(np.argmax(np.abs(direction)))
        if abs(direction[ijk_axis]) < OBLIQUE_TOLERANCE * np.linalg.norm(direction):
            raise ObliqueViewError(f"the {slice_node.GetLayoutName() or slice_node.GetName()} view is oblique to "
                             "the volume, so a click there has no slice to land on; align it with "
                             "logic.rotate_view_to_volume(sliceNode), i.e. "
                             "sliceNode.RotateToVolumePlane(volumeNode) (or the view's 'Rotate to volume "
                             "plane' button)", slice_node)
        return 2 - ijk_axis  # IJK (i, j, k) -> numpy [k, j, i]

    def rotate_view_to_volume(self, slice_node):
        """Turn an oblique view to the closest plane of the volume's grid (Slicer's own method)."""
        slice_node.RotateToVolumePlane(self._require_volume())

    def slice_views(self) -> list:
        """The scene's slice nodes, Red, Yellow, Green first."""
        nodes = slicer.util.getNodesByClass("vtkMRMLSliceNode", slicer.mrmlScene)
        order = {name: rank for rank, name in enumerate(VIEW_ORDER)}
        return sorted(nodes, key=lambda node: order.get(node.GetLayoutName(), len(order)))

    def view_containing(self, ras, tolerance_mm=None):
        """The non-oblique slice view whose plane holds the world point `ras` (None if none does).
        Among several (the point is on an intersection), the current plane's axis wins, then the nearest."""
        current_axis = self.session.plane.axis if self.session and self.session.plane else None
        found = []
        for node in self.slice_views():
            distance = self._distance_to_view(node, ras)
            if distance > (self._on_plane_mm() if tolerance_mm is None else tolerance_mm):
                continue
            try:
                axis = self.plane_for_view(node)
            except InputError:
                continue
            found.append((axis != current_axis, distance, node))
        return min(found, key=lambda f: f[:2])[2] if found else None

    def _distance_to_view(self, slice_node, ras) -> float:
        """Distance in mm from a world point to a view's slice plane."""
        slice_to_ras = slicer.util.arrayFromVTKMatrix(slice_node.GetSliceToRAS())
        normal = slice_to_ras[:3, 2] / np.linalg.norm(slice_to_ras[:3, 2])
        return float(abs(normal @ (np.asarray(ras, float) - slice_to_ras[:3, 3])))

    def _on_plane_mm(self) -> float:
        """How far (mm) from a view's plane a point may be and still count as placed in that view;
        points placed with the mouse lie on the plane up to floating-point rounding."""
        return 0.05 * min(self._require_volume().GetSpacing())

    def _voxel(self, ras) -> tuple:
        """Nearest voxel (k, j, i) of a world point; InputError outside the volume."""
        ijk = self.ras_to_ijk(ras)
        kji = tuple(int(v) for v in np.floor(ijk[::-1] + 0.5))  # round half up, the same way everywhere
        shape = self._require_session().image.shape
        if not all(0 <= v < n for v, n in zip(kji, shape)):
            raise InputError(f"the point {np.round(ras, 2).tolist()} is outside the volume "
                             f"(voxel {kji[::-1]} in IJK; the volume has {shape[::-1]} voxels)")
        return kji

    # ---- clicks ---------------------------------------------------------------------------------
    def click_ras(self, ras, positive=True, slice_node=None) -> np.ndarray:
        """One click at world point `ras`: f2D on the slice it is in; returns the new 2D mask.

        The plane comes from `slice_node` (the view clicked in); without it, from the view whose plane
        holds the point, else the plane being annotated. Moving to another plane starts a new 2D stage
        (unaccepted clicks on the old plane are dropped and its slice is restored). Only the clicked
        slice of the segment changes (a preview until `accept()`).
        """
        session = self._require_session()
        self._require_idle()
        kji = self._voxel(ras)
        if slice_node is None:
            slice_node = self.view_containing(ras)
        if slice_node is not None:
            axis = self.plane_for_view(slice_node)
        elif session.plane is not None:
            axis = session.plane.axis
        else:
            raise InputError("cannot tell which view the point was placed in; pass slice_node")
        plane = Plane(axis, kji[axis])
        row, col = (v for a, v in enumerate(kji) if a != axis)

        slices = {}
        if session.plane != plane:
            if session.plane is not None and session.clicks:
                logging.info("SliceAndConquer: dropped %d unaccepted click(s) on %s",
                             len(session.clicks), session.plane)
            if session.plane is not None:  # take the old plane's preview back out of the segment
                slices[session.plane] = session.plane.of(session.mask3d)
            session.begin_slice(plane)
        mask = session.click(row, col, positive)
        slices[plane] = mask
        self._write_slices(slices)
        return mask

    def undo_click(self) -> np.ndarray:
        """Undo the last click on the current slice; the slice of the segment follows."""
        self._require_idle()
        mask = self._require_session().undo_click()
        self._write_slices({self.session.plane: mask})
        return mask

    def reset_slice(self) -> np.ndarray:
        """Drop all clicks on the current slice; the slice returns to its state before the first click."""
        self._require_idle()
        mask = self._require_session().reset_slice()
        self._write_slices({self.session.plane: mask})
        return mask

    # ---- 3D ------------------------------------------------------------------------------------
    def accept(self) -> Plane | None:
        """Accept the current slice: f3D -> the whole segment, then move the view showing the
        recommended plane's axis onto it (that view only). Returns the recommended Plane (or None).
        The same as `compute_accept()` then `finish_accept()`."""
        self._require_idle()
        self.compute_accept()
        return self.finish_accept()

    def compute_accept(self) -> Plane | None:
        """The computing half of `accept()`: session.accept_slice (f3D + post-processing) and the
        recommendation. Numpy/torch only, no MRML, so it may run in a worker thread (keep the main thread
        off the session meanwhile: see `accept_in_background`). Returns the recommended Plane (or None)."""
        session = self._require_session()
        if session.plane is None:
            raise InputError("no slice to accept: click on a slice first")
        session.accept_slice()
        recommendation = session.recommend()
        self._computed = (session, recommendation)
        return recommendation

    def finish_accept(self) -> Plane | None:
        """The MRML half of `accept()` (main thread): write the 3D mask into the segment and move the
        view showing the recommended plane's axis onto it. Returns the recommended Plane (or None)."""
        computed, self._computed = self._computed, None
        if computed is None or computed[0] is not self.session:
            raise InputError("nothing to finish: call compute_accept() first")
        self._write_volume(self.session.mask3d)
        self.recommendation = computed[1]
        if self.recommendation is not None:
            self.jump_to_plane(self.recommendation)
        return self.recommendation

    def accept_in_background(self) -> threading.Thread:
        """Start `compute_accept()` in a worker thread and return it. Until `finish_background_accept()`
        the logic is `busy`: placed points are queued, other calls refuse. Poll `accept_running`."""
        session = self._require_session()
        self._require_idle()
        if session.plane is None:
            raise InputError("no slice to accept: click on a slice first")
        job = {"session": session, "error": None, "started": time.monotonic()}

        def work():
            try:
                self.compute_accept()
            except BaseException as error:  # handed to the main thread by finish_background_accept
                job["error"] = error

        job["thread"] = threading.Thread(target=work, name="SliceAndConquer accept", daemon=True)
        self.busy, self._job = True, job
        job["thread"].start()
        return job["thread"]

    @property
    def accept_running(self) -> bool:
        """True while a background accept is still computing."""
        return self._job is not None and self._job["thread"].is_alive()

    def poll_accept(self, hand_over_s=0.07) -> bool:
        """Call from the main thread's timer while an accept runs in the background: waits up to
        `hand_over_s` for the worker, which releases the GIL so the worker computes meanwhile (PythonQt
        keeps the GIL on the main thread everywhere else), then returns whether it is still running.
        With a 100 ms timer and 0.07 s the worker gets ~70% of the time and the GUI the rest."""
        job = self._job
        if job is None:
            return False
        if hand_over_s > 0:
            job["thread"].join(hand_over_s)
        return job["thread"].is_alive()

    def accept_progress(self) -> float | None:
        """Seconds the background accept has been computing (None when none runs)."""
        return None if self._job is None else time.monotonic() - self._job["started"]

    def finish_background_accept(self) -> Plane | None:
        """Main thread, once `accept_running` is False: write the result and jump (`finish_accept`),
        then replay the clicks placed meanwhile. Re-raises the worker's error (the session is then as
        before the accept, and the queued clicks are still replayed)."""
        job, self._job = self._job, None
        if job is None:
            raise InputError("no accept is running")
        job["thread"].join()
        self.busy = False
        try:
            if job["error"] is not None:
                raise job["error"]
            if job["session"] is not self.session:  # closed or restarted meanwhile: nothing to write
                return None
            return self.finish_accept()
        finally:
            self.run_pending_clicks()

    def run_pending_clicks(self) -> int:
        """Run the clicks queued while busy, in order; errors go to `last_error`. Returns how many ran."""
        pending, self.pending_clicks = self.pending_clicks, []
        ran = 0
        for ras, view, positive in pending:
            try:
                self.click_ras(ras, positive, view)
                ran += 1
                self.last_error = self.last_exception = None
            except Exception as error:
                self._record_error(error)
        return ran

    def undo_slice(self) -> np.ndarray:
        """Undo the last accept; the segment returns exactly to its state before that slice's clicks."""
        session = self._require_session()
        self._require_idle()
        t = session.t
        mask = session.undo_slice()
        if session.t != t:
            self._write_volume(mask)
            self.recommendation = None
        return mask

    def refresh_segment(self):
        """Write the session's 3D mask into the segment (under the masking rules): after driving
        `self.session` directly, e.g. with the robot user of the benchmarks."""
        self._write_volume(self._require_session().mask3d)

    def jump_to_plane(self, plane: Plane):
        """Centre the first non-oblique view perpendicular to `plane.axis` on that slice (its in-plane
        centre is the volume's centre). The other views keep their positions. Returns the moved view."""
        shape = self._require_session().image.shape
        centre_kji = [(n - 1) / 2.0 for n in shape]
        centre_kji[plane.axis] = plane.index
        ras = self.ijk_to_ras(centre_kji[::-1])
        node = self.view_for_axis(plane.axis)
        if node is not None:
            node.JumpSliceByCentering(*ras)
        return node

    def view_for_axis(self, axis: int):
        """The first non-oblique slice view (Red, Yellow, Green first) showing numpy axis `axis`, or None."""
        for node in self.slice_views():
            try:
                if self.plane_for_view(node) == axis:
                    return node
            except InputError:
                continue
        return None

    def edit_rules(self) -> rules_module.EditRules:
        """The masking rules writes follow now: the Segment Editor's parameter node when the scene has
        one, else the module's choice (`start(edit_rules=...)` or `overwrite_other_segments`)."""
        fallback = self.module_edit_rules or rules_module.EditRules.fallback(self.overwrite_other_segments)
        return rules_module.rules_from_scene(slicer.mrmlScene, self.segmentation_node, fallback)

    def status(self) -> dict:
        """t, the slice being annotated and its clicks, the accepted planes, the recommendation and
        the pipeline, as plain Python values."""
        session = self.session
        if session is None:
            return {"started": False}
        as_tuple = (lambda p: (p.axis, p.index) if p is not None else None)
        return {
            "started": True,
            "t": session.t,
            "plane": as_tuple(session.plane),
            "clicks": len(session.clicks),
            "accepted": [as_tuple(a.plane) for a in session.accepted],
            "recommendation": as_tuple(self.recommendation),
            "message": session.message,
            "pipeline": self.pipeline_name,
            "segment_id": self.segment_id,
            "placing": self.placement.is_placing(),
            "clicks_off": self.placement.off_reason,
            "edit_rules": self.edit_rules().describe(),
        }

    # ---- clicks from markups ----------------------------------------------------------------
    def on_point_defined(self, markups_node, positive=True) -> np.ndarray:
        """A control point was placed: click at its world position in the view it was placed in.
        The view is the crosshair's (the slice view under the mouse) when the point lies on that view's
        plane, else the view whose plane holds the point."""
        ras, view = self.placed_point(markups_node)
        return self.click_ras(ras, positive, view)

    def placed_point(self, markups_node) -> tuple:
        """(world RAS, slice node or None) of the last control point of `markups_node`: the view is the
        crosshair's when the point lies on that view's plane, else the view whose plane holds it."""
        count = markups_node.GetNumberOfControlPoints()
        if count == 0:
            raise InputError("the markups node has no control points")
        ras = [0.0, 0.0, 0.0]
        markups_node.GetNthControlPointPositionWorld(count - 1, ras)
        view = None
        crosshair = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLCrosshairNode")
        if crosshair is not None:
            view = crosshair.GetCursorPositionXYZ([0.0, 0.0, 0.0])
        # Scripted points may not come from the mouse: trust the crosshair only if the point is on its plane.
        if view is None or self._distance_to_view(view, ras) > self._on_plane_mm():
            view = self.view_containing(ras)
        return ras, view

    def add_markups_observers(self, positive_node, negative_node):
        """Click whenever a point is placed in `positive_node` / `negative_node`
        (vtkMRMLMarkupsNode.PointPositionDefinedEvent). Errors go to the log and `last_error` /
        `last_exception`, since an observer cannot raise. While `busy`, points are queued (see
        `pending_clicks`). `remove_markups_observers()` undoes this."""
        self.remove_markups_observers()
        for node, positive in ((positive_node, True), (negative_node, False)):
            if node is None:
                continue
            tag = node.AddObserver(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                                   lambda caller, event, positive=positive: self._on_point_event(caller, positive))
            self._observations.append((node, tag))

    def remove_markups_observers(self):
        for node, tag in self._observations:
            node.RemoveObserver(tag)
        self._observations = []

    def _on_point_event(self, markups_node, positive):
        # Everything is caught: VTK prints and swallows an exception raised in an observer, and the point
        # would then be pruned without a word. The error goes to the log, `last_error` and `on_error`.
        try:
            if self.busy:  # the session belongs to the worker: remember the click, run it afterwards
                self.pending_clicks.append((*self.placed_point(markups_node), positive))
            else:
                self.on_point_defined(markups_node, positive)
            self.last_error = self.last_exception = None
        except Exception as error:
            self._record_error(error)

    def _record_error(self, error: Exception):
        """Keep an error of a click (an observer cannot raise): log it, `last_error`, `on_error`."""
        if isinstance(error, InputError):
            message = str(error)
            logging.warning("SliceAndConquer: %s", message)
        else:  # a bug or a failure, not the user's doing: the traceback goes to the log
            message = f"the click failed: {type(error).__name__}: {error} (details in the Python console log)"
            logging.error("SliceAndConquer: the click failed", exc_info=(type(error), error, error.__traceback__))
        self.last_error, self.last_exception = message, error
        self._report_error(message, error)

    def _report_error(self, message, error):
        if self.on_error is not None:
            try:
                self.on_error(message, error)
            except Exception:
                logging.exception("SliceAndConquer: the error callback failed")

    # ---- place mode ---------------------------------------------------------------------------
    def start_placement(self, positive_node, negative_node, positive=True, schedule=None):
        """Observe the two markups nodes and keep persistent place mode on for `positive` (re-armed
        when Slicer ends it: right-click, double-click). `schedule(f)` delays the re-arm (a GUI passes a
        zero-delay timer); default: at once. `stop_placement()` (or `close()`) undoes it all."""
        self.add_markups_observers(positive_node, negative_node)
        if schedule is not None:
            self.placement.schedule = schedule
        self.placement.start(positive_node, negative_node, positive)

    def set_polarity(self, positive):
        """Next clicks positive or negative; always (re-)arms place mode, also for the same polarity."""
        if self.placement.nodes == (None, None):
            raise InputError("clicks are not captured: press Start first")
        self.placement.arm(positive)

    def stop_placement(self):
        """Leave our place mode and restore the place-mode persistence found before."""
        self.placement.stop()

    def prune_markups(self, positive_node, negative_node) -> int:
        """Remove the placed (defined) control points that are not clicks of the slice being annotated:
        failed, undone, accepted, reset or left on another slice. The points that stay are locked, so a
        view shows exactly the current clicks. Preview points (place mode) are left alone; nothing is
        done while busy. Returns the number of points removed."""
        if self.busy:
            return 0
        session = self.session
        removed = 0
        for node, positive in ((positive_node, True), (negative_node, False)):
            if node is None:
                continue
            wanted = []  # voxels [k, j, i] of this polarity's clicks on the current plane
            if session is not None and session.plane is not None:
                for click in session.clicks:
                    if click.positive == positive:
                        kji = [click.row, click.col]
                        kji.insert(session.plane.axis, session.plane.index)
                        wanted.append(tuple(kji))
            for index in reversed(range(node.GetNumberOfControlPoints())):
                if node.GetNthControlPointPositionStatus(index) != node.PositionDefined:
                    continue
                ras = [0.0, 0.0, 0.0]
                node.GetNthControlPointPositionWorld(index, ras)
                try:
                    kji = self._voxel(ras) if session is not None else None
                except InputError:
                    kji = None
                if kji in wanted:
                    wanted.remove(kji)
                    node.SetNthControlPointLocked(index, True)
                else:
                    node.RemoveNthControlPoint(index)
                    removed += 1
        return removed

    # ---- reading and writing the segment --------------------------------------------------------
    def _read_segment(self, segment_id) -> np.ndarray:
        """A segment as a boolean [k, j, i] array on the volume's grid."""
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation_node, segment_id,
                                                          self.volume_node) > 0

    def _write_segment(self, segment_id, mask):
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), self.segmentation_node,
                                                         segment_id, self.volume_node)

    def _segment_visible(self, segment_id) -> bool:
        display = self.segmentation_node.GetDisplayNode()
        return bool(display.GetSegmentVisibility(segment_id)) if display is not None else True

    def _write_slices(self, slices: dict):
        """Replace only the given planes' slices of the segment (a preview), keep the rest as it is."""
        current = self._read_segment(self.segment_id)
        mask = current.copy()
        for plane, mask2d in slices.items():
            mask[plane.where] = mask2d
        self._write(mask, current)

    def _write_volume(self, mask3d):
        self._write(mask3d, self._read_segment(self.segment_id))

    def _write(self, mask, current):
        """Write `mask` into the segment under the masking rules (`edit_rules()`): outside the editable
        area the segment keeps `current`; voxels taken from other segments are recorded and handed back
        when the segment lets them go, so undo is exact for every segment.
        Simple and exact, but each write exports and re-imports whole volumes; for speed one would write
        only the changed box (vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment with an extent)."""
        self._writer.apply(mask, current, self.edit_rules())
