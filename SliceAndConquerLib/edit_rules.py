"""The Segment Editor's masking settings, applied to what Slice-and-Conquer writes into its segment.

Slicer's Segment Editor keeps its masking settings in its parameter node (`vtkMRMLSegmentEditorNode`, the
scene's singleton tagged "SegmentEditor"): the editable area (`GetMaskMode`, one of
`vtkMRMLSegmentationNode.EditAllowed*`, plus `GetMaskSegmentID` for "inside a single segment"), the
editable intensity range (`GetSourceVolumeIntensityMask` / `...Range`) and how other segments are treated
(`GetOverwriteMode`: overwrite all, overwrite visible, allow overlap). `rules_from_scene()` reads them;
without a Segment Editor node the module's own choice (`EditRules.fallback`) applies.

The same rules as the Segment Editor (`vtkMRMLSegmentationNode::GenerateEditMask` and
`vtkSlicerSegmentEditorLogic`'s "set" modification), in numpy:
- outside the editable area or intensity range the segment keeps its current value;
- "inside" modes count every segment including the edited one, "outside" modes every other segment;
  visible = the segmentation display node's segment visibility;
- voxels newly added to the segment are removed from the segments the overwrite mode names (all, visible
  ones, none = overlap allowed).

Exact undo: a voxel taken from another segment is recorded, and handed back when our segment lets it go
again (undo click, undo slice, a later result without it). The areas are computed from the other segments
as if nothing had been taken and from our segment as it was at start, so they do not drift while we edit.
Slicer has no per-segment lock (the Segment Editor widget's "locked" state is the whole widget's read-only
flag, not stored in the scene), so there is none to honour; hidden segments count through "visible".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

EVERYWHERE, INSIDE_ALL, INSIDE_VISIBLE, OUTSIDE_ALL, OUTSIDE_VISIBLE, INSIDE_SINGLE = range(6)  # EditAllowed*
OVERWRITE_ALL, OVERWRITE_VISIBLE, OVERWRITE_NONE = range(3)  # vtkMRMLSegmentEditorNode.Overwrite*
MASK_NAMES = {EVERYWHERE: "everywhere", INSIDE_ALL: "inside all segments", INSIDE_VISIBLE: "inside visible segments",
              OUTSIDE_ALL: "outside all segments", OUTSIDE_VISIBLE: "outside visible segments",
              INSIDE_SINGLE: "inside one segment"}
OVERWRITE_NAMES = {OVERWRITE_ALL: "overwrite all", OVERWRITE_VISIBLE: "overwrite visible",
                   OVERWRITE_NONE: "allow overlap"}
SEGMENT_EDITOR_TAG = "SegmentEditor"


@dataclass(frozen=True)
class EditRules:
    """Where the segment may change and what happens to other segments (Segment Editor semantics)."""
    mask_mode: int = EVERYWHERE
    mask_segment_id: Optional[str] = None          # for INSIDE_SINGLE
    intensity_range: Optional[Tuple[float, float]] = None  # editable only where lo <= image <= hi
    overwrite_mode: int = OVERWRITE_NONE
    source: str = "module"                          # "module" or "Segment Editor"

    @staticmethod
    def fallback(overwrite_other_segments: bool) -> "EditRules":
        """The module's own choice: either overwrite all other segments, or never touch their voxels."""
        if overwrite_other_segments:
            return EditRules(EVERYWHERE, overwrite_mode=OVERWRITE_ALL)
        return EditRules(OUTSIDE_ALL, overwrite_mode=OVERWRITE_NONE)

    def describe(self) -> str:
        area = MASK_NAMES.get(self.mask_mode, str(self.mask_mode))
        if self.mask_mode == INSIDE_SINGLE:
            area += f" '{self.mask_segment_id or '?'}'"
        text = f"editable {area}"
        if self.intensity_range is not None:
            text += f", intensity {self.intensity_range[0]:g}..{self.intensity_range[1]:g}"
        return f"{text}, {OVERWRITE_NAMES.get(self.overwrite_mode, self.overwrite_mode)} ({self.source})"


def segment_editor_node(scene, segmentation_node=None):
    """The Segment Editor module's parameter node (singleton "SegmentEditor"), else another
    vtkMRMLSegmentEditorNode editing `segmentation_node`; None when there is none."""
    if scene is None:
        return None
    node = scene.GetSingletonNode(SEGMENT_EDITOR_TAG, "vtkMRMLSegmentEditorNode")
    if node is not None:
        return node
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentEditorNode")):
        candidate = scene.GetNthNodeByClass(index, "vtkMRMLSegmentEditorNode")
        if segmentation_node is not None and candidate.GetSegmentationNode() is segmentation_node:
            return candidate
    return None


def rules_from_editor_node(node) -> EditRules:
    """The masking settings of a vtkMRMLSegmentEditorNode (Slicer >= 5.0 names, older 'Master' names too)."""
    intensity_on = getattr(node, "GetSourceVolumeIntensityMask", None) or node.GetMasterVolumeIntensityMask
    intensity_range = getattr(node, "GetSourceVolumeIntensityMaskRange", None) or node.GetMasterVolumeIntensityMaskRange
    return EditRules(mask_mode=int(node.GetMaskMode()), mask_segment_id=node.GetMaskSegmentID() or None,
                     intensity_range=tuple(float(v) for v in intensity_range()) if intensity_on() else None,
                     overwrite_mode=int(node.GetOverwriteMode()), source="Segment Editor")


def rules_from_scene(scene, segmentation_node, fallback: EditRules) -> EditRules:
    node = segment_editor_node(scene, segmentation_node)
    return rules_from_editor_node(node) if node is not None else fallback


class SegmentWriter:
    """Applies EditRules to writes of one segment and keeps what it took from other segments.

    `read(segment_id) -> bool [k, j, i]`, `write(segment_id, mask)` and `visible(segment_id) -> bool` are
    the segmentation's accessors; `image` the volume array (for the intensity range)."""

    def __init__(self, segment_id, segment_ids, read, write, visible, image):
        self.segment_id = segment_id
        self.segment_ids, self.read, self.write, self.visible, self.image = segment_ids, read, write, visible, image
        self.at_start = read(segment_id)
        self.taken: dict = {}            # other segment id -> bool mask of voxels we removed from it

    def others(self, live: dict | None = None) -> dict:
        """Other segments as if we had taken nothing (their content in `live`, or read now, plus what we
        took)."""
        if live is None:
            live = self.live_others()
        return {segment_id: mask | self.taken[segment_id] if segment_id in self.taken else mask
                for segment_id, mask in live.items()}

    def live_others(self) -> dict:
        return {segment_id: self.read(segment_id) for segment_id in self.segment_ids()
                if segment_id != self.segment_id}

    def editable(self, rules: EditRules, others: dict) -> np.ndarray:
        """Where our segment may change (GenerateEditMask's rules plus the intensity range)."""
        shape = self.at_start.shape
        mode = rules.mask_mode
        if mode == EVERYWHERE:
            area = np.ones(shape, bool)
        elif mode == INSIDE_SINGLE:
            area = others.get(rules.mask_segment_id)
            if area is None:  # Slicer's GenerateEditMask: no mask segment -> nothing editable
                area = self.at_start.copy() if rules.mask_segment_id == self.segment_id else np.zeros(shape, bool)
        else:
            visible_only = mode in (INSIDE_VISIBLE, OUTSIDE_VISIBLE)
            union = np.zeros(shape, bool)
            for segment_id, mask in others.items():
                if not visible_only or self.visible(segment_id):
                    union |= mask
            if mode in (INSIDE_ALL, INSIDE_VISIBLE):  # the edited segment counts too (as it was at start)
                if not visible_only or self.visible(self.segment_id):
                    union |= self.at_start
                area = union
            else:
                area = ~union
        if rules.intensity_range is not None:
            low, high = rules.intensity_range
            area = area & (self.image >= low) & (self.image <= high)
        return area

    def apply(self, proposed: np.ndarray, current: np.ndarray, rules: EditRules) -> bool:
        """Write `proposed` (bool [k, j, i]) into our segment, whose content is `current`, under `rules`.
        Returns whether anything changed."""
        uses_others = rules.mask_mode != EVERYWHERE or rules.overwrite_mode != OVERWRITE_NONE or self.taken
        live = self.live_others() if uses_others else {}
        others = self.others(live)
        new = np.where(self.editable(rules, others), proposed, current)
        added, removed = new & ~current, current & ~new
        changed_others = {}
        for segment_id, taken in list(self.taken.items()):  # hand back what we let go of
            if segment_id not in others:  # the user deleted that segment meanwhile
                del self.taken[segment_id]
                continue
            give_back = taken & removed
            if give_back.any():
                changed_others[segment_id] = give_back
                self.taken[segment_id] = taken & ~give_back
        if added.any() and rules.overwrite_mode != OVERWRITE_NONE:
            for segment_id in others:
                if rules.overwrite_mode == OVERWRITE_VISIBLE and not self.visible(segment_id):
                    continue
                take = live[segment_id] & added
                if take.any():
                    self.taken[segment_id] = self.taken.get(segment_id, np.zeros_like(take)) | take
                    changed_others.setdefault(segment_id, np.zeros_like(take))
                    changed_others[segment_id] = changed_others[segment_id] | take
        if not np.array_equal(new, current):
            self.write(self.segment_id, new)
        for segment_id in changed_others:  # their content is now: as if untouched, minus what we hold
            held = self.taken.get(segment_id)
            self.write(segment_id, others[segment_id] if held is None else others[segment_id] & ~held)
        return bool(added.any() or removed.any() or changed_others)
