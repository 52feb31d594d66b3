"""The Slice-and-Conquer state machine of Algorithm 1, on numpy arrays. No Slicer, no Qt.

One Session owns the loop: the 2D stage on one plane (clicks -> f2D -> 2D mask), accepting the plane
(f3D over every accepted plane -> 3D mask), the next-plane recommendation, and undo at both levels.
Accepted planes (with their clicks and 2D masks) are the single source of the paper's P^{2D->3D} and
M^{2D->3D}; `guidance()` derives them on demand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from .clicks import Click, disk_maps
from .errors import InputError
from .geometry import bounding_box, union_box, usable_axes
from .intensity import normalize


@dataclass(frozen=True)
class Plane:
    """A 2D slice: `axis` of the numpy array [k, j, i] it is perpendicular to, and its index."""
    axis: int
    index: int

    def of(self, volume: np.ndarray) -> np.ndarray:
        """The slice of a 3D array on this plane (a copy)."""
        return np.take(volume, self.index, axis=self.axis)

    @property
    def where(self) -> tuple:
        """Index of this plane in a 3D array: `volume[plane.where] = mask2d` writes the slice."""
        return tuple(self.index if a == self.axis else slice(None) for a in range(3))

    def spacing2d(self, spacing) -> tuple:
        return tuple(s for a, s in enumerate(spacing) if a != self.axis)


@dataclass(frozen=True)
class AcceptedSlice:
    plane: Plane
    clicks: tuple
    mask: np.ndarray
    align: bool = True  # whether post-processing may align the 3D result to this mask


@dataclass
class Prediction3D:
    mask: np.ndarray
    confidence: np.ndarray | None = None  # max-softmax probability per voxel, when the model gives one
    message: str | None = None  # what the user should know about this result (e.g. nothing to segment)
    box: tuple | None = None  # set: `confidence` covers this box (slices) only, and is 1 outside it

    def confidence_map(self, shape) -> np.ndarray | None:
        """The confidence on the whole volume of `shape`."""
        if self.box is None or self.confidence is None:
            return self.confidence
        whole = np.ones(shape, self.confidence.dtype)
        whole[self.box] = self.confidence
        return whole


class Predictor2D(Protocol):
    name: str

    def predict(self, image2d: np.ndarray, previous: np.ndarray, clicks: Sequence[Click],
                spacing2d) -> np.ndarray:
        """Boolean 2D mask from a normalised slice, the previous 2D mask and all clicks so far."""


class Predictor3D(Protocol):
    name: str

    def predict(self, image: np.ndarray, spacing, previous: np.ndarray,
                accepted: Sequence[AcceptedSlice]) -> Prediction3D:
        """3D mask from the normalised image, the previous 3D mask and every accepted slice. A
        confidence may cover the whole volume or, with `Prediction3D.box`, only the box it was
        computed on (cheaper on a large volume: the session writes it into its map in place)."""


class Recommender(Protocol):
    def recommend(self, session: "Session") -> Plane | None:
        """The plane to annotate next, or None when nothing is left to recommend."""


@dataclass
class _Stage2D:
    plane: Plane
    start: np.ndarray                      # M_{t,0}: the slice of the 3D mask when the stage began
    clicks: list = field(default_factory=list)
    masks: list = field(default_factory=list)  # masks[s] after click s

    @property
    def mask(self) -> np.ndarray:
        return self.masks[-1] if self.masks else self.start


class Session:
    """Algorithm 1. `image` is the raw volume [k, j, i]; `spacing` in the same order."""

    def __init__(self, image: np.ndarray, spacing, predictor2d: Predictor2D, predictor3d: Predictor3D,
                 recommender: Recommender | None = None, existing_mask: np.ndarray | None = None,
                 modality: str = "auto", postprocess=None):
        image = np.asarray(image)
        if image.ndim != 3:
            raise InputError(f"image is {image.ndim}D; a 3D volume is needed")
        if not usable_axes(image.shape):
            raise InputError(f"image has shape {image.shape}; a 3D volume needs at least 2 voxels along "
                             "two of its axes")
        if not np.isfinite(image).all():
            raise InputError("image holds NaN or infinite values")
        if existing_mask is not None and np.shape(existing_mask) != image.shape:
            raise InputError(f"existing mask shape {np.shape(existing_mask)} differs from image {image.shape}")
        self.image = normalize(image, modality)
        self.spacing = tuple(float(s) for s in spacing)
        self.predictor2d = predictor2d
        self.predictor3d = predictor3d
        self.recommender = recommender
        self.postprocess = postprocess  # (mask3d, accepted) -> mask3d, e.g. align.align_to_accepted
        self.mask3d = np.zeros(image.shape, bool) if existing_mask is None else np.asarray(existing_mask, bool).copy()
        self.confidence: np.ndarray | None = None
        self._unsure_box: tuple | None = None  # the box outside which `confidence` is 1 (None: unknown)
        self.message: str | None = None       # the last 3D step's message to the user, if any
        self.accepted: list[AcceptedSlice] = []
        self._undo3d: list[_Undo3D] = []     # what each accept changed, to undo it exactly
        self._stage: _Stage2D | None = None

    # ---- state -----------------------------------------------------------------------------
    @property
    def t(self) -> int:
        """Number of completed SnC iterations (accepted planes)."""
        return len(self.accepted)

    @property
    def plane(self) -> Plane | None:
        return self._stage.plane if self._stage else None

    @property
    def clicks(self) -> list:
        return list(self._stage.clicks) if self._stage else []

    @property
    def mask2d(self) -> np.ndarray | None:
        return self._stage.mask.copy() if self._stage else None

    # ---- 2D stage -----------------------------------------------------------------------------
    def begin_slice(self, plane: Plane) -> np.ndarray:
        """Start the 2D stage on `plane`; its mask starts as the slice of the current 3D mask."""
        if plane.axis not in (0, 1, 2):
            raise InputError(f"axis {plane.axis} is not 0, 1 or 2")
        if not 0 <= plane.index < self.image.shape[plane.axis]:
            raise InputError(f"slice {plane.index} is outside the volume (axis {plane.axis} has "
                             f"{self.image.shape[plane.axis]} slices)")
        if plane.axis not in usable_axes(self.image.shape):
            thin = [a for a in range(3) if self.image.shape[a] == 1]
            raise InputError(f"the volume has a single slice along axis {thin[0]}: planes of axis "
                             f"{plane.axis} are lines one voxel tall; annotate planes of axis {thin[0]}")
        self._stage = _Stage2D(plane, plane.of(self.mask3d).copy())
        return self.mask2d

    def click(self, row: int, col: int, positive: bool = True) -> np.ndarray:
        """Add a click on the current plane and run f2D; returns the new 2D mask."""
        stage = self._require_stage()
        height, width = stage.start.shape
        if not (0 <= row < height and 0 <= col < width):
            raise InputError(f"click ({row}, {col}) is outside the slice ({height} x {width})")
        clicks = stage.clicks + [Click(int(row), int(col), bool(positive))]
        mask = self.predictor2d.predict(stage.plane.of(self.image), stage.mask, clicks,
                                        stage.plane.spacing2d(self.spacing))
        stage.clicks.append(clicks[-1])
        stage.masks.append(np.asarray(mask, bool))
        return self.mask2d

    def undo_click(self) -> np.ndarray:
        stage = self._require_stage()
        if stage.clicks:
            stage.clicks.pop()
            stage.masks.pop()
        return self.mask2d

    def reset_slice(self) -> np.ndarray:
        stage = self._require_stage()
        stage.clicks.clear()
        stage.masks.clear()
        return self.mask2d

    def _require_stage(self) -> _Stage2D:
        if self._stage is None:
            raise InputError("no slice is being annotated: call begin_slice first")
        return self._stage

    # ---- 3D stage -----------------------------------------------------------------------------
    def accept_slice(self, mask: np.ndarray | None = None, align: bool = True) -> np.ndarray:
        """Accept the current 2D mask (or a mask the user edited by hand) and run f3D.
        Re-accepting a plane replaces its earlier entry. Returns the new 3D mask."""
        stage = self._require_stage()
        mask = stage.mask if mask is None else np.asarray(mask, bool)
        if mask.shape != stage.start.shape:
            raise InputError(f"mask shape {mask.shape} differs from the slice shape {stage.start.shape}")
        entry = AcceptedSlice(stage.plane, tuple(stage.clicks), mask.copy(), align)
        accepted = [a for a in self.accepted if a.plane != stage.plane] + [entry]
        result = self.predictor3d.predict(self.image, self.spacing, self.mask3d, accepted)
        mask3d = np.asarray(result.mask, bool)
        if np.may_share_memory(mask3d, self.mask3d):  # a predictor that returns `previous` itself
            mask3d = mask3d.copy()
        if self.postprocess is not None:
            mask3d = self.postprocess(mask3d, accepted)
        for entry in accepted:  # a promise to the user: accepted planes hold exactly what was accepted
            mask3d[entry.plane.where] = entry.mask
        undo = _Undo3D(self.accepted, self._unsure_box, *_changed(self.mask3d, mask3d))
        confidence = self._next_confidence(result, undo)
        self._undo3d.append(undo)
        self.mask3d, self.confidence, self.accepted = mask3d, confidence, accepted
        self.message = result.message
        self._stage = None
        return self.mask3d

    def _next_confidence(self, result: Prediction3D, undo: _Undo3D) -> np.ndarray | None:
        """The confidence after `result`, what it replaces recorded in `undo`. A confidence of a box
        is written into the session's map in place: a second map of a 512x512x300 CT is 157 MB."""
        old, new = self.confidence, result.confidence
        if new is not None and result.box is not None:
            if old is not None and old.dtype == new.dtype and self._unsure_box is not None:
                changes = union_box(self._unsure_box, result.box)
                undo.confidence_box, undo.confidence = changes, old[changes].copy()
                old[self._unsure_box] = 1
            else:  # the first map, or one whose unsure part is not known: a new map
                undo.confidence, undo.whole_confidence = old, True
                old = np.ones(self.mask3d.shape, new.dtype)
            old[result.box] = new
            self._unsure_box = result.box
            return old
        self._unsure_box = None
        if old is None or new is None or old.dtype != new.dtype:
            undo.confidence, undo.whole_confidence = old, True
        else:
            undo.confidence_box, undo.confidence = _changed(old, new)
        return new

    def undo_slice(self) -> np.ndarray:
        """Undo the last accept: the 3D mask, confidence and accepted planes return exactly."""
        if self._undo3d:
            undo = self._undo3d.pop()
            self.mask3d, self.confidence = undo.restore(self.mask3d, self.confidence)
            self.accepted, self._unsure_box = undo.accepted, undo.unsure_box
            self._stage = None
        return self.mask3d

    def recommend(self) -> Plane | None:
        return self.recommender.recommend(self) if self.recommender else None

    def guidance(self) -> np.ndarray:
        """P^{2D->3D} and M^{2D->3D} from the accepted planes: float32 [4, K, J, I] with positive and
        negative click disks, accepted 2D masks, and a channel marking annotated planes (so that
        'annotated background' differs from 'not annotated')."""
        return guidance_volumes(self.accepted, self.image.shape)


@dataclass
class _Undo3D:
    """The state before an accept, kept as boxes around what the accept changed: whole copies of a
    512x512x300 mask and its float16 confidence would hold 236 MB per accept."""
    accepted: list
    unsure_box: tuple | None            # the session's earlier `_unsure_box`
    mask_box: tuple | None              # None: the accept changed no voxel of the mask
    mask: np.ndarray | None             # the earlier mask3d inside `mask_box`
    confidence_box: tuple | None = None  # where the confidence changed (None: nowhere, or kept whole)
    confidence: np.ndarray | None = None  # the earlier confidence inside `confidence_box`, or whole
    whole_confidence: bool = False       # the confidence was (or became) None or changed type: kept whole

    def restore(self, mask, confidence) -> tuple:
        """(mask3d, confidence) as they were, from the current ones (new arrays where they changed:
        the current ones may be on display)."""
        mask = mask.copy()
        if self.mask_box is not None:
            mask[self.mask_box] = self.mask
        if self.whole_confidence:
            return mask, self.confidence
        if self.confidence_box is not None:
            confidence = confidence.copy()
            confidence[self.confidence_box] = self.confidence
        return mask, confidence


def _changed(old: np.ndarray, new: np.ndarray, slab: int = 16) -> tuple:
    """(box around the voxels where `new` differs from `old`, old values in that box), or (None, None).
    Compared slab by slab along the first axis: a whole-volume comparison of a CT is 79 MB."""
    boxes = []
    for start in range(0, old.shape[0], slab):
        box = bounding_box(old[start:start + slab] != new[start:start + slab])
        if box is not None:
            boxes.append((slice(start + box[0].start, start + box[0].stop),) + box[1:])
    if not boxes:
        return None, None
    box = union_box(*boxes)
    return box, old[box].copy()


def guidance_volumes(accepted: Sequence[AcceptedSlice], shape, box=None, dtype=np.float32) -> np.ndarray:
    """[4, *shape] of 0/1: positive and negative click disks, accepted 2D masks, accepted-plane marker.
    With `box` (a tuple of slices of a volume of `shape`), only that box is built: what f3D needs
    on its region of interest without a full-size 4-channel volume (in uint8, a quarter of float32's)."""
    box = tuple(slice(0, n) for n in shape) if box is None else box
    volumes = np.zeros((4,) + tuple(b.stop - b.start for b in box), dtype=dtype)
    for entry in accepted:
        axis, index = entry.plane.axis, entry.plane.index
        if not box[axis].start <= index < box[axis].stop:
            continue
        in_plane = [box[a] for a in range(3) if a != axis]
        clicks_2d = disk_maps(entry.clicks, entry.mask.shape)[(slice(None), *in_plane)]
        planes = [entry.mask[tuple(in_plane)], np.ones(clicks_2d.shape[1:], bool)]
        where = Plane(axis, index - box[axis].start).where  # the plane's slice of the box
        for channel, values in enumerate(list(clicks_2d) + planes):
            target = volumes[channel][where]
            np.maximum(target, values.astype(dtype), out=target)
    return volumes
