"""Clicks through Slicer's own slice views (slicer-core displayable managers rendered offscreen with EGL):
the Red, Yellow and Green views of a volume with a permuted, flipped direction, anisotropic spacing and a
parent transform; points placed by simulated left clicks through the interactor and markups place mode;
the segment, the 3D result, the jump to the recommended slice, undo, the re-arm after a right-click, other
segments untouched. Assertions are on scene state plus a few rendered pixel colours; the renderings are
kept as PNGs under the test's tmp_path (and under $SNC_TEST_ARTIFACTS when set)."""
import os
import shutil

import numpy as np
import pytest

from slicer_scene import slicer, slicer_scene  # noqa: F401  (the fixture)

slice_views = pytest.importorskip("slice_views")
import vtk  # noqa: E402

from SliceAndConquerLib.session import Plane  # noqa: E402
from SliceAndConquerLib.slicer_logic import SliceAndConquerLogic  # noqa: E402
from test_slicer_logic import (CENTRE, RECOMMENDED, SHAPE, VIEW_AXIS, nodes, toy_factory,  # noqa: E402,F401
                               world)

SEGMENT_RGB = (1.0, 0.75, 0.0)      # our segment: orange
OTHER_BOX = (slice(2, 6), slice(3, 21), slice(3, 25))  # another segment, overlapping the ball's rim


def _is_grey(rgb, tolerance=12):
    return max(rgb) - min(rgb) <= tolerance


def _is_tinted(rgb):
    """Orange over grey: red well above blue."""
    return rgb[0] - rgb[2] > 40


class World:
    """The scene, the three views, the logic and its two click nodes, as the module sets them up."""

    def __init__(self, nodes, toy_factory, artefacts):  # noqa: F811
        self.nodes, self.artefacts = nodes, artefacts
        self.views = slice_views.build_slice_views(nodes.built, size=(240, 240))
        for view in self.views.values():
            view.show_volume(nodes.volume)

        segmentation = nodes.segmentation
        segmentation.SetAndObserveTransformNodeID(nodes.transform.GetID())
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(nodes.volume)
        segmentation.CreateDefaultDisplayNodes()
        self.other_id = segmentation.GetSegmentation().AddEmptySegment("other")
        segmentation.GetSegmentation().GetSegment(self.other_id).SetColor(0.2, 0.3, 1.0)
        self.other = np.zeros(SHAPE, bool)
        self.other[OTHER_BOX] = True
        nodes.write(self.other_id, self.other)

        self.logic = SliceAndConquerLogic()
        self.logic.start(nodes.volume, segmentation, "ours", session_factory=toy_factory)
        segmentation.GetSegmentation().GetSegment("ours").SetColor(*SEGMENT_RGB)
        self.clicks = []
        for color in ((0.2, 0.85, 0.2), (0.95, 0.25, 0.2)):
            node = nodes.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetPointLabelsVisibility(False)
            node.GetDisplayNode().SetSelectedColor(*color)
            self.clicks.append(node)
        self.logic.start_placement(*self.clicks, positive=True)
        self.interaction = nodes.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")

    def segment(self):
        return self.nodes.segment("ours")

    def click(self, name, kji, positive=True):
        """Scroll `name` to the slice of voxel `kji`, then left-click on that voxel's display position."""
        self.logic.set_polarity(positive)
        view = self.views[name]
        self.nodes.show(name, kji)
        x, y, depth = view.display_of_ras(world(kji))
        assert abs(depth) < 1e-6 and 0 <= x < view.size[0] and 0 <= y < view.size[1]
        node = self.clicks[0 if positive else 1]
        before = node.GetNumberOfControlPoints()
        view.click(round(x), round(y))
        assert node.GetNumberOfControlPoints() == before + 1, "the click placed no point"
        placed = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(before, placed)
        assert np.allclose(placed, view.ras_of_display(round(x), round(y)), atol=1e-6)
        assert self.logic.last_error is None, self.logic.last_error
        self.logic.prune_markups(*self.clicks)
        return round(x), round(y)

    def pixel_of(self, name, kji):
        view = self.views[name]
        x, y, _ = view.display_of_ras(world(kji))
        return view.pixel(round(x), round(y))

    def save(self, label):
        path = self.artefacts / f"slice_views_{label}.png"
        slice_views.save_side_by_side(self.views, path)
        target = os.environ.get("SNC_TEST_ARTIFACTS")
        if target:
            os.makedirs(target, exist_ok=True)
            shutil.copy(path, target)
        return path


@pytest.fixture
def world_(nodes, toy_factory, tmp_path):  # noqa: F811
    built = World(nodes, toy_factory, tmp_path)
    yield built
    for view in built.views.values():
        view.close()


def test_clicks_in_real_slice_views_segment_accept_jump_and_undo(world_):
    w, logic = world_, world_.logic
    assert w.interaction.GetCurrentInteractionMode() == w.interaction.Place
    empty = w.segment()
    assert not empty.any()
    assert _is_grey(w.pixel_of("Red", CENTRE))                  # the bright ball, no segment yet

    # Red: a positive click on the ball, then a negative one; only that slice of the segment changes.
    w.click("Red", CENTRE)
    axis = VIEW_AXIS["Red"]
    assert logic.session.plane == Plane(axis, CENTRE[axis])
    first = w.segment()
    changed = np.argwhere(first != empty)
    assert len(changed) and set(changed[:, axis]) == {CENTRE[axis]}
    assert _is_tinted(w.pixel_of("Red", (CENTRE[0], CENTRE[1], CENTRE[2] + 3)))  # painted, next to the point
    w.save("1_red_positive")
    w.click("Red", (CENTRE[0], CENTRE[1], CENTRE[2] + 2), positive=False)
    second = w.segment()
    assert (second != first).any() and not (second & ~first).any()
    assert [c.positive for c in logic.session.clicks] == [True, False]
    logic.undo_click()                                          # undo click: exactly the first click's segment
    assert np.array_equal(w.segment(), first)

    # Yellow and Green: each click lands on its own view's plane (the Red preview is taken back).
    for name in ("Yellow", "Green"):
        w.click(name, CENTRE)
        axis = VIEW_AXIS[name]
        assert logic.session.plane == Plane(axis, CENTRE[axis]) and len(logic.session.clicks) == 1
        positive = w.segment()
        changed = np.argwhere(positive)
        assert len(changed) and set(changed[:, axis]) == {CENTRE[axis]}
        near = list(CENTRE)
        near[(axis + 1) % 3] += 2                                   # a negative click on the same slice
        w.click(name, tuple(near), positive=False)
        negative = w.segment()
        assert (positive & ~negative).any() and not (negative & ~positive).any()
        assert [c.positive for c in logic.session.clicks] == [True, False]
    w.save("2_green_click")
    before_accept = w.segment()

    # Accept: the 3D result, and the view showing the recommended plane's axis (Red: numpy axis 1) jumps.
    offsets = {name: view.slice_node.GetSliceOffset() for name, view in w.views.items()}
    assert logic.accept() == RECOMMENDED
    logic.prune_markups(*w.clicks)                              # the module tidies the points after each action
    result = w.segment()
    assert np.array_equal(result, logic.session.mask3d & ~w.other) and result.sum() > before_accept.sum()
    assert np.array_equal(w.nodes.segment(w.other_id), w.other)   # the other segment is untouched
    red = w.views["Red"].slice_node
    assert red.GetSliceOffset() != pytest.approx(offsets["Red"])
    assert w.views["Red"].display_of_ras(world((CENTRE[0], RECOMMENDED.index, CENTRE[2])))[2] == pytest.approx(0, abs=1e-6)
    for name in ("Yellow", "Green"):
        assert w.views[name].slice_node.GetSliceOffset() == pytest.approx(offsets[name])
    inside = (CENTRE[0], RECOMMENDED.index, CENTRE[2])            # in the result on the recommended slice
    assert result[inside] and _is_tinted(w.pixel_of("Red", inside))
    outside = (CENTRE[0], RECOMMENDED.index, 1)
    assert not result[outside] and _is_grey(w.pixel_of("Red", outside))
    w.save("3_accepted_jumped")

    # Undo slice: the segment is exactly as before the Green slice's click, the other segment untouched.
    logic.undo_slice()
    assert np.array_equal(w.segment(), np.zeros(SHAPE, bool))
    assert np.array_equal(w.nodes.segment(w.other_id), w.other)
    assert not _is_tinted(w.pixel_of("Red", inside))


@pytest.mark.parametrize("gesture", ["right_click", "right_drag", "double_click"])
def test_slicer_ending_place_mode_is_rearmed(world_, gesture):
    w, logic = world_, world_.logic
    view = w.views["Yellow"]
    if gesture == "right_click":
        view.click(30, 30, "Right")
    elif gesture == "right_drag":
        view.drag((30, 30), (30, 90), "Right")
    else:
        view.click(30, 30, "Left", double=True)
    assert logic.placement.rearm_count >= 1, "Slicer did not end place mode: the gesture was not seen"
    assert w.interaction.GetCurrentInteractionMode() == w.interaction.Place
    assert logic.status()["placing"] and logic.status()["clicks_off"] is None
    for node in w.clicks:                                       # stray points of the gesture go away
        logic.prune_markups(*w.clicks)
        assert node.GetNumberOfControlPoints() == 0
    w.click("Yellow", CENTRE)                                   # clicks land again
    assert logic.session.plane == Plane(VIEW_AXIS["Yellow"], CENTRE[VIEW_AXIS["Yellow"]])
    assert np.array_equal(w.nodes.segment(w.other_id), w.other)


def test_an_error_inside_a_real_click_reaches_the_user(world_):
    w, logic = world_, world_.logic
    reported = []
    logic.on_error = lambda message, error: reported.append(message)

    def broken(*args, **kwargs):
        raise RuntimeError("f2D crashed")

    logic.click_ras = broken
    view = w.views["Red"]
    w.nodes.show("Red", CENTRE)
    x, y, _ = view.display_of_ras(world(CENTRE))
    view.click(round(x), round(y))                              # through the interactor and place mode
    assert w.clicks[0].GetNumberOfControlPoints() == 1          # the point was placed...
    assert reported and "RuntimeError: f2D crashed" in reported[0] and logic.last_error == reported[0]
    del logic.click_ras
    logic.prune_markups(*w.clicks)                              # ...and tidied, but not silently
    assert w.clicks[0].GetNumberOfControlPoints() == 0
    w.click("Red", CENTRE)                                      # the next click works
    assert logic.last_error is None and len(logic.session.clicks) == 1
