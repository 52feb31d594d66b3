import numpy as np
import pytest

from SliceAndConquerLib.errors import InputError
from SliceAndConquerLib.session import Plane, Prediction3D, Session, guidance_volumes


@pytest.fixture
def session(sphere_image, toy_predictors):
    return Session(sphere_image, (1.0, 1.0, 1.0), *toy_predictors)


def test_plane_slices_each_axis():
    volume = np.arange(24).reshape(2, 3, 4)
    assert Plane(0, 1).of(volume).shape == (3, 4)
    assert Plane(1, 2).of(volume).shape == (2, 4)
    assert Plane(2, 3).of(volume).shape == (2, 3)
    assert Plane(1, 0).spacing2d((3.0, 2.0, 1.0)) == (3.0, 1.0)


def test_click_runs_f2d_and_undo_restores_previous_state(session, sphere):
    session.begin_slice(Plane(1, 16))
    assert not session.mask2d.any()
    first = session.click(12, 14, True)
    assert first.any() and session.clicks[0].positive
    second = session.click(12, 14, False)
    assert (second != first).any()
    assert np.array_equal(session.undo_click(), first)
    assert session.clicks == [session.clicks[0]] and len(session.clicks) == 1
    assert not session.undo_click().any() and session.clicks == []
    session.click(12, 14, True)
    assert not session.reset_slice().any()


def test_accept_builds_3d_and_undo_slice_restores_exactly(session, sphere):
    session.begin_slice(Plane(0, 12))
    session.click(16, 14, True)
    before = session.mask3d.copy()
    mask3d = session.accept_slice()
    assert session.t == 1 and mask3d.any() and session.plane is None
    after_first = mask3d.copy()
    session.begin_slice(Plane(2, 14))
    assert np.array_equal(session.mask2d, Plane(2, 14).of(after_first)), "M_{t,0} comes from M_{t-1}^3D"
    session.click(12, 16, True)
    session.accept_slice()
    assert session.t == 2 and [a.plane for a in session.accepted] == [Plane(0, 12), Plane(2, 14)]
    assert np.array_equal(session.undo_slice(), after_first) and session.t == 1
    assert np.array_equal(session.undo_slice(), before) and session.t == 0
    assert np.array_equal(session.undo_slice(), before)  # nothing left to undo


def test_reaccepting_a_plane_replaces_it(session):
    for _ in range(2):
        session.begin_slice(Plane(0, 12))
        session.click(16, 14, True)
        session.accept_slice()
    assert [a.plane for a in session.accepted] == [Plane(0, 12)]


def test_existing_mask_is_the_start(sphere_image, sphere, toy_predictors):
    session = Session(sphere_image, (1, 1, 1), *toy_predictors, existing_mask=sphere)
    assert np.array_equal(session.mask3d, sphere) and session.t == 0
    assert np.array_equal(session.begin_slice(Plane(0, 12)), sphere[12])


def test_guidance_is_derived_from_accepted_planes(session):
    session.begin_slice(Plane(0, 12))
    session.click(16, 14, True)
    session.accept_slice()
    guidance = session.guidance()
    assert guidance.shape == (4,) + session.image.shape
    assert guidance[0, 12, 16, 14] == 1 and guidance[0, 11].sum() == 0
    assert np.array_equal(guidance[2, 12] > 0, session.accepted[0].mask)
    assert guidance[3, 12].all() and guidance[3].sum() == guidance[3, 12].size  # annotated marker
    assert np.array_equal(guidance, guidance_volumes(session.accepted, session.image.shape))


def test_bad_input_is_refused(sphere_image, toy_predictors):
    with pytest.raises(InputError, match="2D"):
        Session(sphere_image[0], (1, 1), *toy_predictors)
    bad = sphere_image.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        Session(bad, (1, 1, 1), *toy_predictors)
    session = Session(sphere_image, (1, 1, 1), *toy_predictors)
    with pytest.raises(InputError, match="begin_slice"):
        session.click(1, 1)
    with pytest.raises(InputError, match="outside the volume"):
        session.begin_slice(Plane(0, 99))
    session.begin_slice(Plane(0, 3))
    with pytest.raises(InputError, match="outside the slice"):
        session.click(-1, 5)
    with pytest.raises(InputError, match="mask shape"):
        session.accept_slice(np.zeros((2, 2), bool))


def test_accepted_planes_hold_exactly_the_accepted_masks(sphere_image, toy_predictors):
    from SliceAndConquerLib.session import Prediction3D

    class Eraser:
        name = "eraser"

        def predict(self, image, spacing, previous, accepted):
            return Prediction3D(np.zeros(image.shape, bool))

    session = Session(sphere_image, (1, 1, 1), toy_predictors[0], Eraser())
    session.begin_slice(Plane(1, 16))
    session.click(12, 14, True)
    mask2d = session.mask2d
    session.accept_slice()
    assert np.array_equal(Plane(1, 16).of(session.mask3d), mask2d) and mask2d.any()


class _LocalPredictor3D:
    """Paints a 5-voxel slab around each accepted plane's mask, and is unsure (0.5) on that slab; with
    `boxed`, its confidence covers only the box of its unsure voxels (as f3D's ROI does)."""
    name = "local"

    def __init__(self, boxed=False):
        self.boxed = boxed

    def predict(self, image, spacing, previous, accepted):
        from SliceAndConquerLib.geometry import bounding_box

        mask, confidence = previous.copy(), np.ones(image.shape, np.float16)
        for entry in accepted:
            slab = [slice(None)] * 3
            slab[entry.plane.axis] = slice(max(entry.plane.index - 2, 0), entry.plane.index + 3)
            mask[tuple(slab)] |= np.expand_dims(entry.mask, entry.plane.axis)
            confidence[tuple(slab)][mask[tuple(slab)]] = 0.5
        if self.boxed:
            box = bounding_box(confidence < 1)
            return Prediction3D(mask, confidence[box].copy(), box=box)
        return Prediction3D(mask, confidence)


@pytest.mark.parametrize("boxed", [False, True])
def test_undo_slice_restores_confidence_exactly_and_keeps_only_the_changed_box(toy_predictors, boxed):
    session = Session(np.zeros((64, 64, 64), np.float32), (1.0, 1.0, 1.0), toy_predictors[0],
                      _LocalPredictor3D(boxed))
    states = [(session.mask3d.copy(), session.confidence)]
    for axis, index in ((0, 20), (2, 40)):
        session.begin_slice(Plane(axis, index))
        square = np.zeros((64, 64), bool)
        square[10:20, 30:44] = True
        session.accept_slice(mask=square)
        states.append((session.mask3d.copy(), session.confidence.copy()))
    held = sum(u.mask.nbytes + (0 if u.whole_confidence else u.confidence.nbytes) for u in session._undo3d)
    assert held < 64 ** 3 // 10, "undo keeps the changed box, not whole volumes"
    for mask, confidence in reversed(states[:-1]):
        session.undo_slice()
        assert np.array_equal(session.mask3d, mask)
        if confidence is None:
            assert session.confidence is None
        else:
            assert np.array_equal(session.confidence, confidence)
    for axis, index in ((0, 20), (2, 40)):  # the same accepts again: the same maps as the first time
        session.begin_slice(Plane(axis, index))
        square = np.zeros((64, 64), bool)
        square[10:20, 30:44] = True
        session.accept_slice(mask=square)
    assert np.array_equal(session.confidence, states[-1][1]) and np.array_equal(session.mask3d, states[-1][0])


def test_a_boxed_confidence_is_one_outside_the_latest_box(toy_predictors):
    """Written in place, the map of an earlier accept's box must not survive outside the new one."""
    class LastPlaneOnly(_LocalPredictor3D):  # unsure around the latest accepted plane only
        def predict(self, image, spacing, previous, accepted):
            return super().predict(image, spacing, previous, accepted[-1:])

    session = Session(np.zeros((64, 64, 64), np.float32), (1.0, 1.0, 1.0), toy_predictors[0],
                      LastPlaneOnly(boxed=True))
    square = np.zeros((64, 64), bool)
    square[10:20, 30:44] = True
    maps, masks = [], []
    for axis, index in ((0, 20), (2, 40)):
        masks.append(session.mask3d.copy())
        session.begin_slice(Plane(axis, index))
        session.accept_slice(mask=square)
        maps.append(session.confidence.copy())
    alone = _LocalPredictor3D().predict(session.image, session.spacing, masks[1], session.accepted[-1:]).confidence
    assert np.array_equal(maps[1], alone) and (maps[0] < 1).any() and not np.array_equal(maps[0], maps[1])
    session.undo_slice()
    assert np.array_equal(session.confidence, maps[0])