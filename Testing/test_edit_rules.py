"""Segment Editor masking rules with real MRML nodes: the editable area, the editable intensity range and
the overwrite mode, read from the Segment Editor's parameter node (vtkMRMLSegmentEditorNode, singleton
"SegmentEditor") when the scene has one; every case also undoes exactly, for every segment."""
import numpy as np
import pytest

from slicer_scene import slicer, slicer_scene  # noqa: F401  (the fixture)

from SliceAndConquerLib import edit_rules as rules
from SliceAndConquerLib.slicer_logic import SliceAndConquerLogic
from test_slicer_logic import CENTRE, SHAPE, ball_image, click_in, nodes, toy_factory  # noqa: F401

A_BOX = (slice(6, 14), slice(8, 16), slice(4, 14))    # visible, overlaps the result
B_BOX = (slice(None), slice(14, 24), slice(10, 20))   # hidden, overlaps the result


@pytest.fixture
def scene3(nodes):  # noqa: F811
    """Our segmentation with two other segments, A (visible) and B (hidden)."""
    nodes.segmentation.SetAndObserveTransformNodeID(nodes.transform.GetID())
    nodes.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(nodes.volume)
    nodes.segmentation.CreateDefaultDisplayNodes()
    boxes = {}
    for name, box in (("A", A_BOX), ("B", B_BOX)):
        segment_id = nodes.segmentation.GetSegmentation().AddEmptySegment(name)
        mask = np.zeros(SHAPE, bool)
        mask[box] = True
        nodes.write(segment_id, mask)
        boxes[segment_id] = mask
    nodes.segmentation.GetDisplayNode().SetSegmentVisibility("B", False)
    return nodes, boxes


def editor_node(scene, mask_mode=rules.EVERYWHERE, overwrite=rules.OVERWRITE_NONE, mask_segment=None,
                intensity=None):
    """The Segment Editor module's parameter node, as Slicer's SegmentEditor.py creates it."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    node.SetSingletonTag("SegmentEditor")
    node.SetMaskMode(mask_mode)
    node.SetOverwriteMode(overwrite)
    if mask_segment:
        node.SetMaskSegmentID(mask_segment)
    if intensity is not None:
        node.SetSourceVolumeIntensityMask(True)
        node.SetSourceVolumeIntensityMaskRange(*intensity)
    return node


def run_one_slice(nodes, toy_factory, overwrite_other_segments=False):  # noqa: F811
    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, "ours", session_factory=toy_factory,
                overwrite_other_segments=overwrite_other_segments)
    click_in(nodes, logic, "Green", CENTRE)
    logic.accept()
    return logic


def check_undo(nodes, logic, boxes):
    logic.undo_slice()
    assert not nodes.segment("ours").any()
    for segment_id, mask in boxes.items():
        assert np.array_equal(nodes.segment(segment_id), mask), segment_id


A = np.zeros(SHAPE, bool)
A[A_BOX] = True
B = np.zeros(SHAPE, bool)
B[B_BOX] = True
EDITABLE = {
    "everywhere": (rules.EVERYWHERE, None, np.ones(SHAPE, bool)),
    "inside all": (rules.INSIDE_ALL, None, A | B),
    "inside visible": (rules.INSIDE_VISIBLE, None, A),
    "outside all": (rules.OUTSIDE_ALL, None, ~(A | B)),
    "outside visible": (rules.OUTSIDE_VISIBLE, None, ~A),
    "inside segment B": (rules.INSIDE_SINGLE, "B", B),
    "inside a missing segment": (rules.INSIDE_SINGLE, "nowhere", np.zeros(SHAPE, bool)),
}


@pytest.mark.parametrize("case", list(EDITABLE))
def test_editable_area_follows_the_segment_editor(scene3, toy_factory, case):  # noqa: F811
    nodes, boxes = scene3
    mode, mask_segment, editable = EDITABLE[case]
    editor_node(nodes.scene, mode, rules.OVERWRITE_NONE, mask_segment)
    logic = run_one_slice(nodes, toy_factory, overwrite_other_segments=True)  # the editor node wins
    result = logic.session.mask3d
    assert (result & A).any() and (result & B).any() and (result & ~(A | B)).any()
    assert np.array_equal(nodes.segment("ours"), result & editable)
    for segment_id, mask in boxes.items():                     # allow overlap: others untouched
        assert np.array_equal(nodes.segment(segment_id), mask)
    assert logic.status()["edit_rules"].endswith("(Segment Editor)")
    check_undo(nodes, logic, boxes)


@pytest.mark.parametrize("overwrite, taken", [(rules.OVERWRITE_ALL, ("A", "B")), (rules.OVERWRITE_VISIBLE, ("A",)),
                                              (rules.OVERWRITE_NONE, ())])
def test_overwrite_mode_follows_the_segment_editor(scene3, toy_factory, overwrite, taken):  # noqa: F811
    nodes, boxes = scene3
    editor_node(nodes.scene, rules.EVERYWHERE, overwrite)
    logic = run_one_slice(nodes, toy_factory)
    ours = nodes.segment("ours")
    assert np.array_equal(ours, logic.session.mask3d)
    for segment_id, mask in boxes.items():
        expected = mask & ~ours if segment_id in taken else mask
        assert (mask & ours).any() and np.array_equal(nodes.segment(segment_id), expected), segment_id
    check_undo(nodes, logic, boxes)


def test_undo_click_gives_back_what_a_preview_took(scene3, toy_factory):  # noqa: F811
    nodes, boxes = scene3
    editor_node(nodes.scene, rules.EVERYWHERE, rules.OVERWRITE_ALL)
    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, "ours", session_factory=toy_factory)
    click_in(nodes, logic, "Green", CENTRE)
    assert not np.array_equal(nodes.segment("A"), boxes["A"])  # the preview slice took voxels of A
    logic.undo_click()
    for segment_id, mask in boxes.items():
        assert np.array_equal(nodes.segment(segment_id), mask)


def test_editable_intensity_range(scene3, toy_factory):  # noqa: F811
    nodes, boxes = scene3
    editor_node(nodes.scene, rules.EVERYWHERE, rules.OVERWRITE_NONE, intensity=(95.0, 1000.0))
    logic = run_one_slice(nodes, toy_factory)
    in_range = (ball_image() >= 95.0) & (ball_image() <= 1000.0)
    result = logic.session.mask3d
    assert (result & in_range).any() and (result & ~in_range).any()
    assert np.array_equal(nodes.segment("ours"), result & in_range)
    assert "intensity 95..1000" in logic.status()["edit_rules"]
    check_undo(nodes, logic, boxes)


def test_module_choice_applies_without_a_segment_editor_node(scene3, toy_factory):  # noqa: F811
    nodes, boxes = scene3
    assert rules.segment_editor_node(nodes.scene, nodes.segmentation) is None
    logic = run_one_slice(nodes, toy_factory, overwrite_other_segments=False)
    assert np.array_equal(nodes.segment("ours"), logic.session.mask3d & ~(A | B))
    assert logic.status()["edit_rules"] == "editable outside all segments, allow overlap (module)"
    check_undo(nodes, logic, boxes)

    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, "ours", session_factory=toy_factory,
                edit_rules=rules.EditRules(rules.INSIDE_VISIBLE, overwrite_mode=rules.OVERWRITE_ALL))
    click_in(nodes, logic, "Green", CENTRE)
    logic.accept()
    ours = nodes.segment("ours")
    assert np.array_equal(ours, logic.session.mask3d & A)
    assert np.array_equal(nodes.segment("A"), A & ~ours)
    assert np.array_equal(nodes.segment("B"), B & ~ours) and (B & ours).any()  # where A and B overlap
    check_undo(nodes, logic, boxes)


def test_rules_are_read_at_each_write(scene3, toy_factory):  # noqa: F811
    nodes, boxes = scene3
    node = editor_node(nodes.scene, rules.OUTSIDE_ALL, rules.OVERWRITE_NONE)
    logic = SliceAndConquerLogic()
    logic.start(nodes.volume, nodes.segmentation, "ours", session_factory=toy_factory)
    click_in(nodes, logic, "Green", CENTRE)
    assert not (nodes.segment("ours") & (A | B)).any()
    node.SetMaskMode(rules.EVERYWHERE)                 # the user changes the Segment Editor's setting
    logic.accept()
    assert np.array_equal(nodes.segment("ours"), logic.session.mask3d)


def test_an_editor_node_of_another_name_counts_only_for_our_segmentation(scene3):
    nodes, _ = scene3
    other = nodes.scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    assert rules.segment_editor_node(nodes.scene, nodes.segmentation) is None
    other.SetAndObserveSegmentationNode(nodes.segmentation)
    assert rules.segment_editor_node(nodes.scene, nodes.segmentation) is other


def test_a_segment_deleted_after_we_took_voxels_is_forgotten(scene3, toy_factory):  # noqa: F811
    nodes, boxes = scene3
    editor_node(nodes.scene, rules.EVERYWHERE, rules.OVERWRITE_ALL)
    logic = run_one_slice(nodes, toy_factory)
    nodes.segmentation.GetSegmentation().RemoveSegment("A")
    logic.undo_slice()
    assert not nodes.segment("ours").any() and np.array_equal(nodes.segment("B"), boxes["B"])
