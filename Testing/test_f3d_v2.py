"""f3D v2 (issue 18): a learned residual on the best non-learned 3D guess, trained on loop states."""
import json

import numpy as np
import pytest
import torch

from conftest import make_sphere
from SliceAndConquerLib.classic import CrossRecommender, ShapePrior3D
from SliceAndConquerLib.clicks import Click
from SliceAndConquerLib.models.f2d import F2D
from SliceAndConquerLib.models.f2d_v2 import F2DV2, FrozenBatchNorm
from SliceAndConquerLib.models.f3d import GUESS_LIMIT, ResidualF3D, ResidualF3DV2
from SliceAndConquerLib.models.predictor3d import (EMPTY_ACCEPT, ResidualNetwork3D, guess_logit, load_f3d,
                                                   residual_inputs)
from SliceAndConquerLib.models.roi import roi_for
from SliceAndConquerLib.models.weights import ModelFileError, save_weights, write_card
from SliceAndConquerLib.session import AcceptedSlice, Plane, Session


def _ball_scene():
    """An ellipsoid-ish ball in noise on an anisotropic grid, and two accepted planes on two axes
    whose masks are a little off (as f2D's would be)."""
    shape, spacing = (28, 40, 36), (1.5, 1.0, 1.0)
    truth = make_sphere(shape, centre=(14, 20, 18), radius=11, spacing=spacing)
    rng = np.random.default_rng(0)
    image = np.clip(0.3 + 0.4 * truth + rng.normal(0, 0.05, shape), 0, 1).astype(np.float32)
    first = truth[14].copy()
    first[27:, :] = False  # off the row the second plane crosses (j = 20)
    accepted = [AcceptedSlice(Plane(0, 14), (Click(20, 18, True),), first),
                AcceptedSlice(Plane(1, 20), (Click(14, 18, True),), truth[:, 20])]
    return image, spacing, truth, accepted


def _f2d_v2():
    """A small f2D v2 whose guidance conv is not zero (a trained one's is not)."""
    torch.manual_seed(0)
    f2d = F2DV2(width=16, refine=8)
    torch.nn.init.normal_(f2d.guide_conv.weight, std=0.1)
    return f2d


@pytest.mark.parametrize("transfer,previous_channel", [(False, False), (True, False), (True, True), ("v2", False),
                                                       ("v2", True)])
def test_untrained_residual_f3d_returns_exactly_the_guess(transfer, previous_channel):
    torch.manual_seed(0)
    if transfer == "v2":
        model = ResidualF3DV2(f2d=_f2d_v2(), previous_channel=previous_channel)
    else:
        model = ResidualF3D(width=8, f2d=F2D(width=8) if transfer else None, previous_channel=previous_channel)
    image, spacing, _, accepted = _ball_scene()
    previous = np.zeros(image.shape, bool)
    previous[2:5, 2:5, 2:5] = True  # earlier work far from the planes: the guess keeps it
    guess = ShapePrior3D().predict(image, spacing, previous, accepted).mask
    result = ResidualNetwork3D(model, "cpu").predict(image, spacing, previous, accepted)
    assert np.array_equal(result.mask, guess) and guess[3, 3, 3]
    assert result.confidence_map(image.shape).shape == image.shape


def test_guess_logit_has_the_guess_sign_and_is_clipped():
    guess = make_sphere((20, 20, 20), radius=6)
    logit = guess_logit(guess, (2.0, 2.0, 2.0))
    assert np.array_equal(logit > 0, guess)
    assert logit.max() == GUESS_LIMIT and logit.min() == -GUESS_LIMIT
    assert np.all(guess_logit(np.zeros((4, 4, 4), bool), (1, 1, 1)) == -GUESS_LIMIT)


def test_a_trained_f3d_changes_nothing_outside_its_roi_nor_on_accepted_planes():
    """Non-zero residual weights (as after training): outside the ROI the result is the guess, and the
    session's accepted planes hold exactly the accepted masks."""
    torch.manual_seed(0)
    model = ResidualF3D(width=8)
    with torch.no_grad():
        model.body.head.weight.normal_(0, 5.0)
        model.body.head.bias.copy_(torch.tensor([-3.0, 3.0]))  # pushes everything towards target
    image, spacing, truth, accepted = _ball_scene()
    network = ResidualNetwork3D(model, "cpu")
    session = Session(image, spacing, None, network, CrossRecommender())
    session.image = image
    for entry in accepted:
        session.begin_slice(entry.plane)
        session.accept_slice(mask=entry.mask)
    roi = roi_for(image.shape, spacing, None, accepted)
    outside = np.ones(image.shape, bool)
    outside[roi.box] = False
    assert outside.any() and not session.mask3d[outside].any()
    for entry in session.accepted:
        assert np.array_equal(entry.plane.of(session.mask3d), entry.mask)
    inside = session.mask3d[roi.box]
    assert inside.sum() > truth.sum()  # the residual did act inside the ROI


def test_an_accept_without_target_gives_an_empty_mask_and_a_message():
    image, spacing, _, _ = _ball_scene()
    session = Session(image, spacing, None, ResidualNetwork3D(ResidualF3D(width=8), "cpu"))
    session.begin_slice(Plane(0, 3))
    mask = session.accept_slice(mask=np.zeros(image.shape[1:], bool))
    assert not mask.any() and session.message == EMPTY_ACCEPT and session.confidence is None


@pytest.mark.parametrize("previous_channel", [False, True])
def test_only_the_previous_mask_channel_lets_f3d_see_an_existing_mask_where_the_guess_replaced_it(previous_channel):
    """Near the accepted planes the guess is the shape prior, whatever the session had: two existing
    masks that differ only there give the same guess. f3D v2 tells them apart only through its
    previous-mask input (weights made non-zero, as after training)."""
    torch.manual_seed(0)
    model = ResidualF3D(width=8, f2d=F2D(width=8), previous_channel=previous_channel)
    with torch.no_grad():
        model.body.head.weight.normal_(0, 5.0)
        model.body.image_conv.weight[:, -1].normal_(0, 1.0)  # the previous mask's zero weights (else the guess's)
    image, spacing, truth, accepted = _ball_scene()
    guesser = ShapePrior3D()
    network = ResidualNetwork3D(model, "cpu")
    existing = truth.copy()
    holed = truth.copy()
    holed[12:17, 16:24, 14:22] = False  # a hole in the existing result, next to both planes
    assert np.array_equal(guesser.predict(image, spacing, existing, accepted).mask,
                          guesser.predict(image, spacing, holed, accepted).mask)
    first, second = (network.predict(image, spacing, p, accepted).mask for p in (existing, holed))
    assert np.array_equal(first, second) != previous_channel


def test_loop_states_keep_the_previous_mask_and_old_states_are_refused_for_it(tmp_path):
    from SliceAndConquerLib.training.loop_states import load_state_sample, save_state

    image, spacing, truth, accepted = _ball_scene()
    previous = np.zeros(image.shape, bool)
    previous[10:18, 14:26, 12:24] = True
    assert save_state(tmp_path / "state-0-0000-2.npz", image, spacing, previous, accepted, truth, 48)
    plain = load_state_sample(tmp_path / "state-0-0000-2.npz")
    image_path, guidance, guess, goal, slices = load_state_sample(tmp_path / "state-0-0000-2.npz", True)
    assert plain[0].shape[1] == 2 and image_path.shape[1] == 3 and slices == 2
    assert torch.equal(image_path[:, :2], plain[0])
    inputs = residual_inputs(image, spacing, previous, accepted, grid_size=48)
    assert torch.allclose(image_path[0, 2], inputs.previous[0, 0], atol=1e-3)  # float16 on disk
    assert 0 < float(image_path[0, 2].mean()) < 1
    with np.load(tmp_path / "state-0-0000-2.npz") as state:  # a state made before the channel existed
        np.savez(tmp_path / "old.npz", **{k: state[k] for k in state.files if k != "previous"})
    from SliceAndConquerLib.errors import InputError
    with pytest.raises(InputError, match="previous-mask input"):
        load_state_sample(tmp_path / "old.npz", True)


def test_residual_inputs_are_none_without_target_and_carry_the_guess():
    image, spacing, _, accepted = _ball_scene()
    previous = np.zeros(image.shape, bool)
    assert residual_inputs(image, spacing, previous, [AcceptedSlice(Plane(0, 1), (), np.zeros((40, 36), bool))]) is None
    inputs = residual_inputs(image, spacing, previous, accepted)
    assert inputs.image_path.shape[1] == 2 and inputs.guidance.shape[1] == 4
    assert tuple(inputs.guess_logit.shape[2:]) == inputs.roi.grid
    assert torch.equal(inputs.guess_logit[0, 0] > 0, inputs.image_path[0, 1] > 0.5)


def _weights(tmp_path, name, config, model=None):
    path = save_weights(tmp_path / name, model if model is not None else ResidualF3D(width=8), config)
    write_card(path, {"model": "f3d"})
    return path


def test_f3d_trained_with_another_f2d_is_refused(tmp_path):
    f2d = save_weights(tmp_path / "f2d.pt", F2D(width=8), {"arch": {"width": 8}})
    other = save_weights(tmp_path / "other.pt", F2D(width=4), {"arch": {"width": 4}})
    from SliceAndConquerLib.models.weights import sha256

    path = _weights(tmp_path, "f3d.pt", {"arch": {"width": 8, "residual": True}, "f2d_sha256": sha256(f2d)})
    assert isinstance(load_f3d(path, "cpu", f2d_weights=f2d), ResidualNetwork3D)
    with pytest.raises(ModelFileError, match="another f2D.*snc train f3d"):
        load_f3d(path, "cpu", f2d_weights=other)
    wrong_width = _weights(tmp_path, "wide.pt", {"arch": {"width": 16, "residual": True}})
    with pytest.raises(ModelFileError, match="do not fit"):
        load_f3d(wrong_width, "cpu")


def test_train_residual_f3d_command_simulates_loop_states(tmp_path):
    from test_f2d import _tiny_manifest
    from SliceAndConquerLib.cli import main
    from SliceAndConquerLib.training.loop_states import load_state_sample

    manifest = _tiny_manifest(tmp_path)
    torch.manual_seed(1)  # the untrained f2D decides whether a run gives states (with seed 0 none does)
    f2d_path = save_weights(tmp_path / "f2d.pt", F2D(width=8), {"arch": {"width": 8}})
    write_card(f2d_path, {"model": "f2d"})
    out = tmp_path / "run"
    args = ["train", "f3d", "--residual", "--manifest", str(manifest), "--init-2d", str(f2d_path),
            "--out", str(out), "--batch", "1", "--threads", "1", "--loop-runs", "2", "--state-workers", "1",
            "--engine-runs", "2", "--refine-runs", "2", "--previous-mask"]
    assert main(args + ["--steps", "2"]) == 0
    real = sorted((out / "states").glob("state-*.npz"))
    engine = sorted((out / "states-engine").glob("state-*.npz"))
    refine = sorted((out / "states-refine").glob("state-*.npz"))
    assert real and engine and refine, "every source gives states"
    states = real + engine + refine
    assert {int(p.stem.rsplit("-", 1)[1]) for p in states} <= set(range(1, 7))
    for source in ("engine", "refine"):
        assert json.loads((out / f"states-{source}" / "settings.json").read_text())["source"] == source
    image_path, guidance, guess, goal, slices = load_state_sample(states[0], previous_channel=True)
    assert image_path.shape[1] == 3 and guidance.shape[1] == 4 and guess.shape == goal.shape
    before = {str(p): p.stat().st_mtime_ns for p in states}
    assert main(args + ["--steps", "3", "--resume"]) == 0   # the states are reused, not made again
    assert {str(p): p.stat().st_mtime_ns for p in states} == before
    card = json.loads((out / "f3d.json").read_text())
    assert card["steps"] == 3 and card["data"]["loop_states"]["files"] == len(states)
    assert card["data"]["loop_states"]["engine_files"] == len(engine)
    assert card["data"]["loop_states"]["refine_files"] == len(refine)
    assert card["recipe"]["loss"].startswith("CE + soft Dice")
    network = load_f3d(out / "f3d.pt", "cpu", f2d_weights=f2d_path)
    assert isinstance(network, ResidualNetwork3D)
    assert network.tau is None  # trained without LogitNorm: its softmax is read as the confidence
    assert network.model.previous_channel and card["architecture"].endswith("(zero-initialised channel)")
    # `snc benchmark f3d-states`: the residual's gain over its guess on these states; an untrained
    # residual (a zero head) is its guess exactly
    untrained = _weights(tmp_path, "untrained.pt", {"arch": {"width": 8, "residual": True}})
    assert main(["benchmark", "f3d-states", "--states", str(out / "states"), "--model", str(untrained),
                 "--threads", "1", "--out", str(tmp_path / "gain.json")]) == 0
    gain = json.loads((tmp_path / "gain.json").read_text())
    assert gain["count"] == len(real) and gain["iou_f3d"] == gain["iou_guess"] > 0
    assert sum(row["count"] for row in gain["by_slices"].values()) == len(real)


def test_refine_runs_start_from_a_reproducibly_degraded_truth():
    from SliceAndConquerLib.metrics import dice
    from SliceAndConquerLib.models.predictor2d import Network2D
    from SliceAndConquerLib.training.loop_states import refine_start, robot_states

    image, spacing, truth, _ = _ball_scene()
    starts = [refine_start(truth, np.random.default_rng(seed)) for seed in (0, 0, 1, 2, 3)]
    assert np.array_equal(starts[0], starts[1])
    assert all(0.15 < dice(s, truth) < 0.99 for s in starts)  # the protocol's starts average 0.46 on val
    torch.manual_seed(0)
    f2d = Network2D(F2D(width=8), "cpu")
    _, cropped, calls = robot_states(image, truth, spacing, f2d, np.random.default_rng(3), refine=True)
    assert calls, "the run accepted a plane"
    # the first 3D step is asked to correct the existing mask (the run's first draw), not an empty one
    assert np.array_equal(calls[0][0], refine_start(cropped, np.random.default_rng(3)))
    assert calls[0][0].any()


def test_engine_volume_synthesis_is_deterministic_and_its_target_is_its_label():
    from test_f2d_v2 import _label_volume
    from SliceAndConquerLib.training import synth

    labels = _label_volume()
    first = synth.synth_volume_from_labels(labels, 2, np.random.default_rng(7))
    again = synth.synth_volume_from_labels(labels, 2, np.random.default_rng(7))
    other = synth.synth_volume_from_labels(labels, 2, np.random.default_rng(8))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    assert first[0].shape == labels.shape and first[0].dtype == np.float32
    assert 0 <= first[0].min() and first[0].max() <= 1
    plain = synth.EngineSettings(elastic_px=(0.0, 0.0), noise=(0.0, 0.0), blur_px=(0.0, 0.0), bias=0.0)
    for seed in range(4):
        image, truth = synth.synth_volume_from_labels(labels, 2, np.random.default_rng(seed), plain)
        assert np.array_equal(truth, labels == 2)
        assert image[truth].std() < 0.1, "one label, one intensity (plus a faint texture)"
    deformed = synth.EngineSettings(elastic_px=(5.0, 6.0), noise=(0.0, 0.0), blur_px=(0.0, 0.0), bias=0.0)
    for seed in range(4):
        image, truth = synth.synth_volume_from_labels(labels, 2, np.random.default_rng(seed), deformed)
        assert not np.array_equal(truth, labels == 2) and 0.5 < truth.sum() / (labels == 2).sum() < 2
        assert image[truth].std() < 0.1


def test_engine_lesions_lie_inside_the_body_and_change_nothing_else():
    from SliceAndConquerLib.training import synth

    shape, spacing = (40, 80, 80), (2.0, 1.0, 1.0)
    body = make_sphere(shape, centre=(20, 40, 40), radius=34, spacing=spacing)
    host = make_sphere(shape, centre=(20, 40, 40), radius=24, spacing=spacing)
    rng = np.random.default_rng(0)
    image = np.where(body, 0.4 + 0.2 * host + rng.normal(0, 0.02, shape), 0.0).astype(np.float32)
    made = 0
    for seed in range(6):
        out = synth.synth_lesion_volume(image, host, spacing, np.random.default_rng(seed))
        if out is None:
            continue
        made += 1
        painted, lesion = out
        assert lesion.any() and not (lesion & ~body).any()
        assert np.array_equal(painted[~body], image[~body]), "nothing painted outside the body"
        assert 0 <= painted.min() and painted.max() <= 1
        again = synth.synth_lesion_volume(image, host, spacing, np.random.default_rng(seed))
        assert np.array_equal(again[0], painted) and np.array_equal(again[1], lesion)
    assert made >= 3


def test_ce_dice_keeps_a_gradient_on_the_voxels_the_guess_has_right():
    """Why f3D v2 trains with CE + Dice: on a guess right on most voxels, NFL of LogitNorm-ed logits
    leaves (almost) no gradient on the right voxels, so nothing holds them when the residual moves."""
    from SliceAndConquerLib.training.losses import ce_dice_loss, logit_norm, normalized_focal_loss

    goal = torch.zeros(1, 1, 8, 8, 8)
    goal[..., 2:6, 2:6, 2:6] = 1
    guess = torch.where(goal > 0, 3.0, -3.0)
    guess[..., 0, 0, 0] = 3.0  # one voxel wrong
    right = (guess > 0) == (goal > 0)
    gradients = {}
    for name, loss_of in (("ce-dice", ce_dice_loss), ("nfl", lambda l, g: normalized_focal_loss(logit_norm(l), g))):
        residual = torch.zeros(1, 2, 8, 8, 8, requires_grad=True)
        loss_of(residual + torch.cat([torch.zeros_like(guess), guess], 1), goal).backward()
        gradients[name] = residual.grad.abs().sum(1, keepdim=True)[right].mean().item()
    assert gradients["ce-dice"] > 1e-5 > gradients["nfl"]
    assert ce_dice_loss(torch.cat([torch.zeros_like(goal), 6 * goal - 3], 1), goal) < \
        ce_dice_loss(torch.cat([torch.zeros_like(goal), 3 - 6 * goal], 1), goal)


@pytest.mark.parametrize("thin_axis", [0, 2])
def test_a_single_slice_volume_is_refused_on_the_other_axes_only(thin_axis):
    from SliceAndConquerLib.errors import InputError

    shape = [32, 32, 32]
    shape[thin_axis] = 1
    disk = make_sphere(tuple(shape), centre=[0 if a == thin_axis else 16 for a in range(3)], radius=8)
    image = np.where(disk, 0.8, 0.2).astype(np.float32)
    session = Session(image, (1.0, 1.0, 1.0), None, ResidualNetwork3D(ResidualF3D(width=8), "cpu"),
                      CrossRecommender(unsure_first=True, unsure_below=0.7))
    session.image = image
    other = (thin_axis + 1) % 3
    with pytest.raises(InputError, match=f"single slice along axis {thin_axis}.*annotate planes of axis {thin_axis}"):
        session.begin_slice(Plane(other, 3))
    plane = Plane(thin_axis, 0)
    session.begin_slice(plane)
    mask = session.accept_slice(mask=plane.of(disk))
    assert np.array_equal(mask, disk)
    assert session.recommend() is None or session.recommend().axis == thin_axis
    with pytest.raises(InputError, match="two of its axes"):
        Session(np.zeros((1, 1, 8), np.float32), (1, 1, 1), None, None)


def test_fine_tuning_starts_from_the_given_f3d_and_refuses_one_of_other_inputs(tmp_path, capsys):
    from test_f2d import _tiny_manifest
    from SliceAndConquerLib.cli import main
    from SliceAndConquerLib.models.weights import load_state, sha256

    manifest = _tiny_manifest(tmp_path)
    torch.manual_seed(1)  # as above: an untrained f2D whose runs give states
    f2d_path = save_weights(tmp_path / "f2d.pt", F2D(width=8), {"arch": {"width": 8}})
    write_card(f2d_path, {"model": "f2d"})
    torch.manual_seed(2)
    trained = ResidualF3D(8)
    torch.nn.init.normal_(trained.body.head.weight, std=0.1)  # not the zero head a fresh transfer has
    start = _weights(tmp_path, "start.pt", {"arch": {"width": 8, "mask_attention": True, "residual": True},
                                            "f2d_sha256": sha256(f2d_path)}, trained)
    args = ["train", "f3d", "--residual", "--manifest", str(manifest), "--init-2d", str(f2d_path),
            "--batch", "1", "--threads", "1", "--loop-runs", "2", "--state-workers", "1", "--steps", "1"]
    # a learning rate of zero leaves the weights where they start: those of --init, not of the transfer
    assert main(args + ["--out", str(tmp_path / "run"), "--init", str(start), "--lr", "0"]) == 0
    tuned = load_state(tmp_path / "run" / "f3d.pt")["state_dict"]
    assert all(torch.equal(tuned[k], v) for k, v in trained.state_dict().items())
    card = json.loads((tmp_path / "run" / "f3d.json").read_text())
    assert card["init"] == {"weights": str(start), "sha256": sha256(start)}
    assert main(args + ["--out", str(tmp_path / "other"), "--init", str(start), "--previous-mask"]) == 2
    assert "without the previous-mask channel" in capsys.readouterr().err
    other_f2d = _weights(tmp_path, "other.pt", {"arch": {"width": 8, "mask_attention": True, "residual": True},
                                                "f2d_sha256": "0" * 64}, trained)
    assert main(args + ["--out", str(tmp_path / "other"), "--init", str(other_f2d)]) == 2
    assert "another f2D's masks" in capsys.readouterr().err


def test_f2d_v2_transfers_to_f3d_v2_conv_by_conv():
    f2d = _f2d_v2()
    model = ResidualF3DV2(f2d=f2d, previous_channel=True)
    convs2d = {n: m for n, m in f2d.named_modules() if isinstance(m, torch.nn.Conv2d)}
    convs3d = {n[len("body."):]: m for n, m in model.named_modules() if type(m).__name__ == "SoftACSConv"
               and n.startswith("body.")}
    assert set(convs2d) == set(convs3d)
    depthwise = [n for n, conv in convs2d.items() if conv.groups > 1]
    assert depthwise and all(convs3d[n].groups == convs2d[n].groups for n in depthwise)
    for name, conv in convs2d.items():
        if name not in ("guide_conv", "head"):
            assert torch.equal(convs3d[name].weight, conv.weight), name
    guide, w = model.body.guide_conv.weight, f2d.guide_conv.weight  # [P+, P-, M2D, marker, guess, previous]
    assert torch.equal(guide[:, :3], w) and torch.equal(guide[:, 4], w[:, 2])
    assert not guide[:, 3].any() and not guide[:, 5].any()
    assert not model.body.head.weight.any() and model.body.head.out_channels == 2
    norm = next(m for m in model.body.modules() if isinstance(m, FrozenBatchNorm))
    with torch.no_grad():
        norm.running_mean.normal_()
    x = torch.randn(2, norm.weight.numel(), 3, 4, 5)  # a frozen BatchNorm: the same map in 3D as in 2D
    assert torch.allclose(norm(x)[:, :, 1], norm(x[:, :, 1]))
    logits, attention = model.residual(torch.rand(1, 3, 16, 20, 24), torch.zeros(1, 4, 16, 20, 24))
    assert logits.shape == (1, 2, 16, 20, 24) and attention.shape == (1, 1, 16, 20, 24)
    assert ResidualF3DV2(f2d=f2d, mask_attention=False).residual(torch.rand(1, 2, 16, 16, 16),
                                                                 torch.zeros(1, 4, 16, 16, 16))[1] is None


def test_train_f3d_from_f2d_v2_weights(tmp_path, capsys):
    from test_f2d import _tiny_manifest
    from SliceAndConquerLib.cli import main

    manifest = _tiny_manifest(tmp_path)
    f2d = _f2d_v2()
    torch.nn.init.constant_(f2d.head.bias, 2.0)  # an untrained f2D that finds something, so runs give states
    f2d_path = save_weights(tmp_path / "f2d.pt", f2d, {"arch": {"name": "v2", "width": 16, "refine": 8},
                                                          "input_size": 128, "first_click": "fixed"})
    write_card(f2d_path, {"model": "f2d"})
    args = ["train", "f3d", "--manifest", str(manifest), "--init-2d", str(f2d_path), "--batch", "1",
            "--threads", "1", "--loop-runs", "2", "--state-workers", "1", "--steps", "1"]
    assert main(args + ["--out", str(tmp_path / "v1")]) == 2  # the non-residual f3D is v1's only
    assert "f3D v2 only; add --residual" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(args + ["--residual", "--out", str(out)]) == 0
    network = load_f3d(out / "f3d.pt", "cpu", f2d_weights=f2d_path)
    assert isinstance(network.model, ResidualF3DV2)
    assert network.model.arch == {"name": "v2", "width": 16, "refine": 8, "mask_attention": True,
                                  "previous_channel": False}
    card = json.loads((out / "f3d.json").read_text())
    assert card["architecture"].startswith("f3D v2 (ResidualF3DV2") and card["transfer"] == str(f2d_path)
    # fine-tuning it keeps its architecture
    assert main(args + ["--residual", "--out", str(tmp_path / "tuned"), "--init", str(out / "f3d.pt")]) == 0
    assert isinstance(load_f3d(tmp_path / "tuned" / "f3d.pt", "cpu").model, ResidualF3DV2)
