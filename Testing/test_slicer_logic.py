"""The Slicer logic with real MRML nodes (slicer-core), on a volume whose geometry punishes shortcuts:
a permuted and flipped IJK-to-RAS direction, anisotropic spacing and a parent transform (translation +
90 degree rotation), so that no view shows the numpy axis its name suggests."""
import numpy as np
import pytest

from slicer_scene import slicer, slicer_scene  # noqa: F401  (the fixture)
import vtk

from SliceAndConquerLib.errors import InputError
from SliceAndConquerLib.session import Plane, Session
from SliceAndConquerLib.slicer_logic import ObliqueViewError, SliceAndConquerLogic

SHAPE = (20, 24, 28)                 # numpy [k, j, i]
SPACING_IJK = (0.8, 1.0, 2.5)
CENTRE = (10, 12, 14)                # ball centre, [k, j, i]
RECOMMENDED = Plane(1, 7)
# Columns: where i, j, k point in the volume's RAS (a permutation with a flip).
DIRECTION = np.array([[0, 0, -1],
                      [1, 0, 0],
                      [0, -1, 0]], float)
ORIGIN = (10.0, -20.0, 30.0)
# Parent transform: 90 degrees about S (R -> A, A -> -R) and a translation.
TO_PARENT = np.array([[0, -1, 0, 5.0],
                      [1, 0, 0, -7.0],
                      [0, 0, 1, 12.0],
                      [0, 0, 0, 1]])
# With that geometry: i -> -R (Yellow shows numpy axis 2), j -> -S (Red: axis 1), k -> -A (Green: axis 0).
VIEW_AXIS = {"Red": 1, "Yellow": 2, "Green": 0}


def ijk_to_world_matrix():
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = DIRECTION * np.array(SPACING_IJK)
    ijk_to_ras[:3, 3] = ORIGIN
    return TO_PARENT @ ijk_to_ras


def world(kji):
    """World RAS of a voxel [k, j, i], computed here independently of the logic."""
    return (ijk_to_world_matrix() @ np.array([*kji[::-1], 1.0]))[:3]


def ijk_of_world(ras):
    return (np.linalg.inv(ijk_to_world_matrix()) @ np.array([*ras, 1.0]))[:3]


def ball_image():
    grids = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    spacing_kji = SPACING_IJK[::-1]
    distance2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, CENTRE, spacing_kji))
    rng = np.random.default_rng(0)
    return ((distance2 <= 7.0 ** 2) * 100.0 + rng.normal(0, 5, SHAPE)).astype(np.float32)


class FixedRecommender:
    def __init__(self, plane):
        self.plane = plane

    def recommend(self, session):
        return self.plane


@pytest.fixture
def toy_factory(toy_predictors):
    f2d, f3d = toy_predictors

    def toy_session(image, spacing, existing_mask=None):
        return Session(image, spacing, f2d, f3d, FixedRecommender(RECOMMENDED), existing_mask=existing_mask)

    return toy_session


class Scene:
    """The nodes of one test: volume under a transform, a segmentation under the same transform."""

    def __init__(self, built):
        self.built = built
        self.scene = built.scene
        self.views = built.views
        ijk_to_ras = vtk.vtkMatrix4x4()
        for r in range(3):
            for c in range(3):
                ijk_to_ras.SetElement(r, c, DIRECTION[r, c] * SPACING_IJK[c])
            ijk_to_ras.SetElement(r, 3, ORIGIN[r])
        self.volume = slicer.util.addVolumeFromArray(ball_image(), ijkToRAS=ijk_to_ras, name="ball")
        self.transform = self.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        self.transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(TO_PARENT))
        self.volume.SetAndObserveTransformNodeID(self.transform.GetID())
        self.segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")

    def segment(self, segment_id):
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation, segment_id, self.volume) > 0

    def write(self, segment_id, mask):
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), self.segmentation,
                                                         segment_id, self.volume)

    def show(self, view, kji):
        """The user scrolls `view` to the slice holding voxel `kji` (as a point placed there would be)."""
        self.views[view].JumpSliceByCentering(*world(kji))
        return self.views[view]


@pytest.fixture
def nodes(slicer_scene):  # noqa: F811
    return Scene(slicer_scene)


@pytest.fixture
def logic(nodes, toy_factory):
    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, session_factory=toy_factory)
    return logic


def click_in(nodes, logic, view, kji, positive=True):
    return logic.click_ras(world(kji), positive, nodes.show(view, kji))


def test_geometry_round_trip_and_view_axes(nodes, logic):
    for kji in [(0, 0, 0), (3, 17, 9), (19, 23, 27)]:
        assert np.allclose(logic.ras_to_ijk(world(kji)), kji[::-1])
        assert np.allclose(logic.ijk_to_ras(kji[::-1]), world(kji))
    assert {name: logic.plane_for_view(node) for name, node in nodes.views.items()} == VIEW_AXIS


def test_click_in_yellow_lands_on_its_plane_and_changes_only_that_slice(nodes, logic):
    segment_id = logic.segment_id
    click_in(nodes, logic, "Green", CENTRE)          # a first accepted plane, so other slices hold data
    logic.accept()
    before = nodes.segment(segment_id)

    kji = (9, 11, 15)
    mask2d = click_in(nodes, logic, "Yellow", kji)
    assert logic.session.plane == Plane(2, 15)
    click = logic.session.clicks[0]
    assert (click.row, click.col, click.positive) == (9, 11, True)  # row = k, col = j on axis 2
    after = nodes.segment(segment_id)
    changed = np.argwhere(after != before)
    assert len(changed) and set(changed[:, 2]) == {15}
    assert np.array_equal(after[:, :, 15], mask2d)
    assert np.array_equal(np.delete(after, 15, axis=2), np.delete(before, 15, axis=2))
    assert logic.status()["clicks"] == 1 and logic.status()["plane"] == (2, 15)


def test_point_without_view_uses_the_view_whose_plane_holds_it(nodes, logic):
    kji = (10, 14, 12)
    nodes.show("Red", kji)
    logic.click_ras(world(kji), True)
    assert logic.session.plane == Plane(VIEW_AXIS["Red"], 14)


def test_accept_writes_3d_and_moves_only_the_recommended_view(nodes, logic):
    click_in(nodes, logic, "Green", CENTRE)
    offsets = {name: view.GetSliceOffset() for name, view in nodes.views.items()}
    recommended = logic.accept()

    assert recommended == RECOMMENDED
    segment = nodes.segment(logic.segment_id)
    assert segment.any() and np.array_equal(segment, logic.session.mask3d)

    red = nodes.views["Red"]                               # the view showing numpy axis 1
    centre = slicer.util.arrayFromVTKMatrix(red.GetSliceToRAS())[:3, 3]
    assert ijk_of_world(centre)[2 - RECOMMENDED.axis] == pytest.approx(RECOMMENDED.index)
    normal = slicer.util.arrayFromVTKMatrix(red.GetSliceToRAS())[:3, 2]
    target = world((9.5, RECOMMENDED.index, 13.5))
    assert red.GetSliceOffset() == pytest.approx(normal @ target)
    assert red.GetSliceOffset() != pytest.approx(offsets["Red"])
    for name in ("Yellow", "Green"):
        assert nodes.views[name].GetSliceOffset() == pytest.approx(offsets[name])
    assert logic.status() == {"started": True, "t": 1, "plane": None, "clicks": 0,
                              "accepted": [(0, CENTRE[0])], "recommendation": (1, 7), "message": None,
                              "pipeline": "toy_session", "segment_id": logic.segment_id,
                              "placing": False, "clicks_off": None,
                              "edit_rules": "editable outside all segments, allow overlap (module)"}


def test_undo_click_reset_and_undo_slice_restore_the_segment_exactly(nodes, logic):
    segment_id = logic.segment_id
    click_in(nodes, logic, "Green", CENTRE)
    logic.accept()
    accepted = nodes.segment(segment_id)

    first = click_in(nodes, logic, "Red", (12, 12, 14))
    after_first = nodes.segment(segment_id)
    click_in(nodes, logic, "Red", (12, 12, 14), positive=False)
    assert (nodes.segment(segment_id) != after_first).any()
    assert np.array_equal(logic.undo_click(), first)
    assert np.array_equal(nodes.segment(segment_id), after_first)
    logic.reset_slice()
    assert np.array_equal(nodes.segment(segment_id), accepted)

    click_in(nodes, logic, "Red", (12, 12, 14))
    logic.accept()
    assert (nodes.segment(segment_id) != accepted).any()
    logic.undo_slice()
    assert np.array_equal(nodes.segment(segment_id), accepted)
    assert logic.session.t == 1


def test_moving_to_another_plane_takes_back_the_unaccepted_preview(nodes, logic):
    click_in(nodes, logic, "Yellow", CENTRE)
    mask2d = click_in(nodes, logic, "Red", CENTRE)
    expected = np.zeros(SHAPE, bool)
    expected[:, CENTRE[1], :] = mask2d
    assert mask2d.any() and np.array_equal(nodes.segment(logic.segment_id), expected)


def test_other_segments_are_protected_or_overwritten_and_undo_gives_back(nodes, toy_factory):
    nodes.segmentation.SetAndObserveTransformNodeID(nodes.transform.GetID())
    nodes.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(nodes.volume)
    other_id = nodes.segmentation.GetSegmentation().AddEmptySegment("other")
    other = np.zeros(SHAPE, bool)
    other[6:14, 8:16, 4:14] = True                       # overlaps half of the ball
    nodes.write(other_id, other)
    assert np.array_equal(nodes.segment(other_id), other)

    for overwrite in (False, True):
        logic = SliceAndConquerLogic()
        logic.start(nodes.volume, nodes.segmentation, session_factory=toy_factory,
                    overwrite_other_segments=overwrite)
        click_in(nodes, logic, "Green", CENTRE)
        logic.accept()
        ours = nodes.segment(logic.segment_id)
        assert (logic.session.mask3d & other).any()
        if overwrite:  # ours takes the voxels; the other segment loses exactly those
            assert np.array_equal(ours, logic.session.mask3d)
            assert np.array_equal(nodes.segment(other_id), other & ~ours)
        else:          # the other segment's voxels are never taken
            assert np.array_equal(ours, logic.session.mask3d & ~other)
            assert np.array_equal(nodes.segment(other_id), other)
        logic.undo_slice()
        assert not nodes.segment(logic.segment_id).any()
        assert np.array_equal(nodes.segment(other_id), other)   # given back exactly


def _tilted_red_view(nodes):
    """The Red view rotated 30 degrees out of every volume plane."""
    red = nodes.views["Red"]
    tilt = vtk.vtkTransform()
    tilt.RotateWXYZ(30, 1, 1, 0)
    tilted = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(tilt.GetMatrix(), red.GetSliceToRAS(), tilted)
    red.GetSliceToRAS().DeepCopy(tilted)
    red.UpdateMatrices()
    return red


def test_oblique_view_is_refused_until_rotated_to_the_volume(nodes, logic):
    red = _tilted_red_view(nodes)
    with pytest.raises(InputError, match="oblique.*RotateToVolumePlane"):
        logic.click_ras(world(CENTRE), True, red)
    assert logic.session.plane is None and not nodes.segment(logic.segment_id).any()
    logic.rotate_view_to_volume(red)
    assert logic.plane_for_view(red) == VIEW_AXIS["Red"]


@pytest.mark.parametrize("ijk", [(-2, 5, 5), (28, 5, 5), (5, 24, 5), (5, 5, -1), (5, 5, 20)])
def test_click_outside_the_volume_is_refused(nodes, logic, ijk):
    with pytest.raises(InputError, match="outside the volume"):
        logic.click_ras(world(ijk[::-1]), True, nodes.views["Yellow"])
    assert logic.session.plane is None


def test_existing_segment_content_is_the_starting_mask(nodes, toy_factory):
    nodes.segmentation.SetAndObserveTransformNodeID(nodes.transform.GetID())
    nodes.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(nodes.volume)
    segment_id = nodes.segmentation.GetSegmentation().AddEmptySegment("liver")
    existing = np.zeros(SHAPE, bool)
    existing[2:5, 3:9, 20:26] = True
    nodes.write(segment_id, existing)

    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, segment_id, session_factory=toy_factory)
    assert logic.segment_id == segment_id
    assert np.array_equal(logic.session.mask3d, existing)
    click_in(nodes, logic, "Green", CENTRE)
    logic.accept()
    assert np.array_equal(nodes.segment(segment_id)[2:5, 3:9, 20:26], existing[2:5, 3:9, 20:26])

    missing = SliceAndConquerLogic()
    missing.start(nodes.volume, nodes.segmentation, "tumour", session_factory=toy_factory)
    assert missing.segment_id == "tumour" and not missing.session.mask3d.any()


def test_segmentation_under_another_transform_is_refused(nodes, toy_factory):
    nodes.segmentation.GetSegmentation().AddEmptySegment("a")
    with pytest.raises(InputError, match="different transforms"):
        SliceAndConquerLogic().start(nodes.volume, nodes.segmentation, session_factory=toy_factory)


def test_new_segmentation_is_placed_under_the_volume_transform(nodes, logic):
    assert nodes.segmentation.GetTransformNodeID() == nodes.transform.GetID()


def test_non_linear_transform_is_refused(nodes, toy_factory):
    warp = nodes.scene.AddNewNodeByClass("vtkMRMLTransformNode")
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for p in [(0, 0, 0), (50, 0, 0), (0, 50, 0), (0, 0, 50)]:
        source.InsertNextPoint(p)
        target.InsertNextPoint(p[0] + 1, p[1], p[2])
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    warp.SetAndObserveTransformToParent(spline)
    nodes.transform.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(InputError, match="non-linear"):
        SliceAndConquerLogic().start(nodes.volume, nodes.segmentation, session_factory=toy_factory)


def test_markups_points_click_in_the_view_they_were_placed_in(nodes, logic):
    positive = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    kji = (10, 12, 16)
    nodes.show("Red", kji)
    yellow = nodes.show("Yellow", kji)               # the point lies on both the Red and Yellow planes

    # The crosshair says the mouse is in Yellow, so Yellow it is.
    nodes.built.crosshair.SetCursorPositionXYZ([20.0, 30.0, 0.0], yellow)
    positive.AddControlPointWorld(vtk.vtkVector3d(*world(kji)))
    logic.on_point_defined(positive, True)
    assert logic.session.plane == Plane(VIEW_AXIS["Yellow"], 16) and len(logic.session.clicks) == 1

    # A stale crosshair (Green, whose plane does not hold the point) falls back to the plane test.
    nodes.built.crosshair.SetCursorPositionXYZ([20.0, 30.0, 0.0], nodes.views["Green"])
    positive.AddControlPointWorld(vtk.vtkVector3d(*world((11, 5, 16))))
    logic.on_point_defined(positive, True)
    assert logic.session.plane == Plane(VIEW_AXIS["Yellow"], 16) and len(logic.session.clicks) == 2


def test_markups_observers_turn_placed_points_into_clicks(nodes, logic):
    positive = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    negative = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    logic.add_markups_observers(positive, negative)
    nodes.show("Red", CENTRE)
    positive.AddControlPointWorld(vtk.vtkVector3d(*world(CENTRE)))
    negative.AddControlPointWorld(vtk.vtkVector3d(*world((10, 12, 15))))
    assert logic.last_error is None
    assert [c.positive for c in logic.session.clicks] == [True, False]
    assert logic.session.plane == Plane(VIEW_AXIS["Red"], CENTRE[1])

    outside = world((10, 12, 40))
    positive.AddControlPointWorld(vtk.vtkVector3d(*outside))
    assert "outside the volume" in logic.last_error and len(logic.session.clicks) == 2

    logic.remove_markups_observers()
    positive.AddControlPointWorld(vtk.vtkVector3d(*world(CENTRE)))
    assert len(logic.session.clicks) == 2


# ---- accept in two halves, and in a worker thread --------------------------------------------------------
def test_compute_accept_touches_no_node_and_finish_accept_writes_and_jumps(nodes, logic):
    click_in(nodes, logic, "Green", CENTRE)
    preview = nodes.segment(logic.segment_id)
    offsets = {name: view.GetSliceOffset() for name, view in nodes.views.items()}

    assert logic.compute_accept() == RECOMMENDED
    assert np.array_equal(nodes.segment(logic.segment_id), preview)             # no MRML write yet
    assert {name: view.GetSliceOffset() for name, view in nodes.views.items()} == offsets
    assert logic.session.t == 1 and logic.recommendation is None

    assert logic.finish_accept() == RECOMMENDED
    assert np.array_equal(nodes.segment(logic.segment_id), logic.session.mask3d)
    assert nodes.views["Red"].GetSliceOffset() != pytest.approx(offsets["Red"])  # the axis-1 view jumped
    assert logic.status()["recommendation"] == (RECOMMENDED.axis, RECOMMENDED.index)
    with pytest.raises(InputError, match="compute_accept"):
        logic.finish_accept()                                                   # nothing left to finish


def test_split_accept_equals_accept(nodes, toy_factory):
    results = []
    for split in (False, True):
        segmentation = nodes.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")  # one each: no overlap rule
        logic = SliceAndConquerLogic()
        logic.start(nodes.volume, segmentation, session_factory=toy_factory)
        click_in(nodes, logic, "Green", CENTRE)
        if split:
            logic.compute_accept()
            logic.finish_accept()
        else:
            logic.accept()
        results.append(slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, logic.segment_id, nodes.volume))
    assert results[0].any() and np.array_equal(*results)


def test_accept_without_a_slice_is_refused(logic):
    with pytest.raises(InputError, match="click on a slice first"):
        logic.accept()
    with pytest.raises(InputError, match="click on a slice first"):
        logic.accept_in_background()
    assert not logic.busy


class GatedPredictor3D:
    """Wraps an f3D: predict() waits until `release` is set (or raises `error`), like a slow network."""

    def __init__(self, inner, error=None):
        import threading

        self.inner, self.error = inner, error
        self.started, self.release = threading.Event(), threading.Event()

    def predict(self, *args):
        self.started.set()
        assert self.release.wait(10), "the test never released the worker"
        if self.error is not None:
            raise self.error
        return self.inner.predict(*args)


def gated_factory(toy_predictors, error=None):
    f2d, f3d = toy_predictors
    gate = GatedPredictor3D(f3d, error)

    def factory(image, spacing, existing_mask=None):
        return Session(image, spacing, f2d, gate, FixedRecommender(RECOMMENDED), existing_mask=existing_mask)

    return gate, factory


def test_background_accept_queues_clicks_and_finishes_on_the_main_thread(nodes, toy_predictors):
    gate, factory = gated_factory(toy_predictors)
    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, session_factory=factory)
    positive = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    negative = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    logic.add_markups_observers(positive, negative)
    click_in(nodes, logic, "Green", CENTRE)
    preview = nodes.segment(logic.segment_id)

    thread = logic.accept_in_background()
    assert gate.started.wait(10) and logic.busy and logic.accept_running
    # While the worker computes: a placed point is queued, not lost; direct calls are refused.
    kji = (12, 12, 14)
    nodes.show("Red", kji)
    positive.AddControlPointWorld(vtk.vtkVector3d(*world(kji)))
    assert logic.last_error is None and len(logic.pending_clicks) == 1
    for call in (logic.undo_click, logic.undo_slice, logic.reset_slice, logic.accept,
                 lambda: logic.click_ras(world(kji), True, nodes.views["Red"])):
        with pytest.raises(InputError, match="still being computed"):
            call()
    assert logic.prune_markups(positive, negative) == 0                  # leaves the points alone meanwhile
    assert np.array_equal(nodes.segment(logic.segment_id), preview)      # the worker writes no node

    gate.release.set()
    thread.join(10)
    assert not logic.accept_running
    assert logic.finish_background_accept() == RECOMMENDED
    assert not logic.busy and logic.pending_clicks == [] and logic.session.t == 1
    # The queued click ran after the 3D result was written: it starts the next 2D stage on its plane.
    assert logic.session.plane == Plane(VIEW_AXIS["Red"], kji[1]) and len(logic.session.clicks) == 1
    expected = logic.session.mask3d.copy()
    expected[:, kji[1], :] = logic.session.mask2d
    assert np.array_equal(nodes.segment(logic.segment_id), expected)
    with pytest.raises(InputError, match="no accept is running"):
        logic.finish_background_accept()


def test_background_accept_error_reaches_the_main_thread(nodes, toy_predictors):
    gate, factory = gated_factory(toy_predictors, error=InputError("f3D failed"))
    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, session_factory=factory)
    click_in(nodes, logic, "Green", CENTRE)
    preview = nodes.segment(logic.segment_id)
    gate.release.set()
    logic.accept_in_background().join(10)
    with pytest.raises(InputError, match="f3D failed"):
        logic.finish_background_accept()
    assert not logic.busy and logic.session.t == 0 and logic.session.plane == Plane(0, CENTRE[0])
    assert np.array_equal(nodes.segment(logic.segment_id), preview)


def test_close_drops_a_running_accept_without_writing(nodes, toy_predictors):
    gate, factory = gated_factory(toy_predictors)
    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, session_factory=factory)
    click_in(nodes, logic, "Green", CENTRE)
    preview = nodes.segment(logic.segment_id)
    thread = logic.accept_in_background()
    logic.close()
    assert not logic.busy and logic.session is None and not logic.accept_running
    gate.release.set()
    thread.join(10)
    assert np.array_equal(nodes.segment(logic.segment_id), preview)


# ---- device, markups display, oblique views ---------------------------------------------------------------
def test_device_is_checked_and_passed_only_to_factories_that_take_it(nodes, toy_factory, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    logic = SliceAndConquerLogic()
    with pytest.raises(InputError, match="CUDA was requested"):
        logic.start(nodes.volume, nodes.segmentation, session_factory=toy_factory, device="cuda")
    assert logic.session is None

    logic.start(nodes.volume, nodes.segmentation, session_factory=toy_factory, device="cpu")  # ignored
    assert logic.device == "cpu" and logic.session is not None

    seen = {}

    def with_device(image, spacing, existing_mask=None, device="auto"):
        seen["device"] = device
        return toy_factory(image, spacing, existing_mask=existing_mask)

    logic.start(nodes.volume, nodes.segmentation, logic.segment_id, session_factory=with_device, device="cpu")
    assert seen == {"device": "cpu"}


def test_prune_markups_keeps_exactly_the_current_clicks(nodes, logic):
    positive = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    negative = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    logic.add_markups_observers(positive, negative)
    nodes.show("Red", CENTRE)
    for node, kji in ((positive, CENTRE), (negative, (10, 12, 15)), (positive, (10, 12, 40)),   # outside
                      (positive, (10, 12, 12))):
        node.AddControlPointWorld(vtk.vtkVector3d(*world(kji)))
    assert len(logic.session.clicks) == 3
    assert logic.prune_markups(positive, negative) == 1                  # the point outside the volume
    assert (positive.GetNumberOfControlPoints(), negative.GetNumberOfControlPoints()) == (2, 1)
    assert positive.GetNthControlPointLocked(0) and negative.GetNthControlPointLocked(0)

    logic.undo_click()                                                   # the last positive click
    assert logic.prune_markups(positive, negative) == 1
    kept = [0.0, 0.0, 0.0]
    positive.GetNthControlPointPositionWorld(0, kept)
    assert np.allclose(kept, world(CENTRE)) and negative.GetNumberOfControlPoints() == 1

    logic.accept()
    assert logic.prune_markups(positive, negative) == 2
    assert positive.GetNumberOfControlPoints() == negative.GetNumberOfControlPoints() == 0


def test_oblique_click_from_markups_names_the_view(nodes, logic):
    red = _tilted_red_view(nodes)
    positive = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    logic.add_markups_observers(positive, None)
    red.JumpSliceByCentering(*world(CENTRE))                                 # the tilted plane holds it
    nodes.built.crosshair.SetCursorPositionXYZ([20.0, 30.0, 0.0], red)
    positive.AddControlPointWorld(vtk.vtkVector3d(*world(CENTRE)))
    assert "oblique" in logic.last_error
    assert isinstance(logic.last_exception, ObliqueViewError) and logic.last_exception.slice_node is red
    logic.rotate_view_to_volume(red)
    assert logic.view_for_axis(VIEW_AXIS["Red"]) is red
