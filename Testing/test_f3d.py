"""f3D: the 2D -> 3D conversion, weight transfer, ROI handling and the weight files."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_sphere
from SliceAndConquerLib.clicks import Click
from SliceAndConquerLib.models.f2d import F2D
from SliceAndConquerLib.models.f3d import F3D, acs_from_conv2d, convert_to_3d
from SliceAndConquerLib.models.predictor3d import Network3D, load_f3d, to_grid
from SliceAndConquerLib.models.roi import MIN_ROI_MM, roi_for
from SliceAndConquerLib.models.weights import ModelFileError, save_weights, shipped, write_card
from SliceAndConquerLib.session import AcceptedSlice, Plane


def _plane_by_plane(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Reference Mean-ACS: the 2D conv on every axial, coronal and sagittal slice, averaged."""
    b, c, d, h, w = x.shape
    outs = []
    for axis in (2, 3, 4):  # the axis the 2D planes are stacked along
        moved = x.movedim(axis, 1)                           # [B, n, C, p, q]
        n, p, q = moved.shape[1], moved.shape[3], moved.shape[4]
        y = F.conv2d(moved.reshape(b * n, c, p, q), conv.weight, None, 1, conv.padding)
        outs.append(y.reshape(b, n, -1, p, q).movedim(1, axis))
    return sum(outs) / 3 + (conv.bias.view(1, -1, 1, 1, 1) if conv.bias is not None else 0)


@pytest.mark.parametrize("kernel, bias", [(3, True), (3, False), (1, True)])
def test_converted_convolution_is_the_mean_of_plane_by_plane_2d_convolutions(kernel, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, kernel, padding=kernel // 2, bias=bias)
    x = torch.randn(2, 3, 6, 7, 8)
    with torch.no_grad():
        assert torch.allclose(acs_from_conv2d(conv)(x), _plane_by_plane(conv, x), atol=1e-5)


def test_transfer_copies_every_convolution():
    torch.manual_seed(0)
    f2d = F2D(width=8)
    converted = convert_to_3d(f2d)
    convs2d = {n: m for n, m in f2d.named_modules() if isinstance(m, torch.nn.Conv2d)}
    convs3d = {n: m for n, m in converted.named_modules() if type(m).__name__ == "SoftACSConv"}
    assert set(convs2d) == set(convs3d) and convs2d
    for name, conv in convs2d.items():
        assert torch.equal(convs3d[name].weight, conv.weight)
    assert converted.interpolation == "trilinear" and f2d.interpolation == "bilinear"
    f3d = F3D.from_f2d(f2d)
    w = f2d.guide_conv.weight
    assert torch.equal(f3d.body.guide_conv.weight[:, :3], w) and not f3d.body.guide_conv.weight[:, 3].any()
    assert torch.equal(f3d.body.image_conv.weight[:, 0], f2d.image_conv.weight[:, 0])
    assert torch.equal(f3d.body.image_conv.weight[:, 1], w[:, 2])
    assert torch.equal(f3d.body.enc1[0].body[0].weight, f2d.enc1[0].body[0].weight)


def test_f3d_forward_shapes_and_ablations():
    torch.manual_seed(0)
    image, guidance = torch.rand(1, 2, 16, 24, 20), torch.zeros(1, 4, 16, 24, 20)
    logits, attention = F3D(width=8).eval()(image, guidance)
    assert logits.shape == (1, 2, 16, 24, 20) and attention.shape == (1, 1, 16, 24, 20)
    logits, attention = F3D(width=8, mask_attention=False).eval()(image, guidance)
    assert attention is None


def test_roi_paste_leaves_voxels_outside_the_box_untouched():
    torch.manual_seed(0)
    shape, spacing = (40, 50, 60), (2.0, 1.0, 1.0)
    truth = make_sphere(shape, centre=(20, 30, 40), radius=10, spacing=spacing)
    previous = truth.copy()
    accepted = [AcceptedSlice(Plane(0, 20), (Click(30, 40, True),), truth[20])]
    roi = roi_for(shape, spacing, previous, accepted)
    outside = np.ones(shape, bool)
    outside[roi.box] = False
    assert outside.any() and not (previous & outside).any()
    network = Network3D(F3D(width=8), "cpu")
    network.foreground = lambda *args: np.ones(roi.shape, np.float32)  # a network that says "all"
    result = network.predict(np.random.rand(*shape).astype(np.float32), spacing, previous, accepted)
    assert result.mask[roi.box].all() and not result.mask[outside].any()
    confidence = result.confidence_map(shape)
    assert confidence.shape == shape and (confidence[outside] == 1).all()


def test_confidence_is_calibrated_on_normalised_logits():
    """A LogitNorm-trained model keeps its raw logits small: (0.1, 0.3) is a decisive foreground vote
    (the normalised difference is large), although its raw softmax is only 0.55."""
    class SmallLogits(torch.nn.Module):
        def forward(self, image, guidance):
            logits = torch.ones_like(image[:, :1]) * torch.tensor([0.1, 0.3]).view(1, 2, 1, 1, 1)
            return logits, None

    shape, spacing = (32, 32, 32), (1.0, 1.0, 1.0)
    truth = make_sphere(shape, radius=8)
    accepted = [AcceptedSlice(Plane(0, 16), (), truth[16])]
    result = Network3D(SmallLogits(), "cpu", tau=0.1).predict(np.zeros(shape, np.float32), spacing,
                                                             np.zeros(shape, bool), accepted)
    roi = roi_for(shape, spacing, np.zeros(shape, bool), accepted)
    assert result.mask[roi.box].all()
    assert result.box == roi.box and result.confidence.min() > 0.99


def test_roi_rule_reaches_along_the_normal_and_keeps_tiny_targets_wide():
    shape, spacing = (100, 100, 100), (1.0, 1.0, 1.0)
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True              # 20 mm wide
    roi = roi_for(shape, spacing, np.zeros(shape, bool), [AcceptedSlice(Plane(0, 50), (), mask)])
    depth = roi.box[0].stop - roi.box[0].start
    assert depth >= 20 and roi.box[0].start < 50 < roi.box[0].stop
    tiny = np.zeros((100, 100), bool)
    tiny[50, 50] = True
    roi = roi_for(shape, spacing, np.zeros(shape, bool), [AcceptedSlice(Plane(1, 50), (), tiny)])
    assert min(b.stop - b.start for b in roi.box) >= MIN_ROI_MM
    assert max(roi.grid) <= 64 and all(g % 16 == 0 for g in roi.grid)


def test_previous_mask_input_is_the_shape_prior_near_accepted_planes():
    from SliceAndConquerLib.models.predictor3d import roi_inputs
    from SliceAndConquerLib.shape_prior import prior_or_previous

    shape, spacing = (40, 48, 48), (1.0, 1.0, 1.0)
    truth = make_sphere(shape, centre=(20, 24, 24), radius=10)
    stale = np.zeros(shape, bool)
    stale[20, 5:10, 5:10] = True  # an old result on the accepted plane, outside its mask
    accepted = [AcceptedSlice(Plane(0, 20), (Click(24, 24, True),), truth[20])]
    roi = roi_for(shape, spacing, stale, accepted)
    image_path, _ = roi_inputs(np.zeros(shape, np.float32), spacing, stale, accepted, roi)
    expected = prior_or_previous(accepted, spacing, stale, roi.box).astype(np.float32)
    grid = to_grid(torch.from_numpy(expected)[None, None], roi.grid)
    assert torch.allclose(image_path[:, 1:], grid)
    assert not expected[20 - roi.box[0].start, 5 - roi.box[1].start, 5 - roi.box[2].start]


def test_thin_planes_survive_the_working_grid():
    volume = torch.zeros(1, 1, 90, 90, 90)
    volume[0, 0, 45] = 1
    assert to_grid(volume, (30, 30, 30), thin=True).amax(dim=(3, 4)).max() == 1


def test_corrupt_f3d_weights_are_refused(tmp_path):
    path = save_weights(tmp_path / "f3d.pt", F3D(width=8), {"arch": {"width": 8}})
    write_card(path, {"model": "f3d"})
    assert isinstance(load_f3d(path, "cpu"), Network3D)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="f3d.pt"):
        load_f3d(path)


@pytest.mark.skipif(shipped("f3d") is None, reason="no shipped f3D weights yet")
def test_shipped_f3d_completes_a_sphere_from_one_accepted_slice():
    from SliceAndConquerLib.metrics import dice

    shape, spacing = (48, 64, 64), (1.5, 1.0, 1.0)
    truth = make_sphere(shape, centre=(24, 32, 32), radius=18, spacing=spacing)
    rng = np.random.default_rng(0)
    image = (0.3 + 0.4 * truth + rng.normal(0, 0.03, shape)).astype(np.float32)
    accepted = [AcceptedSlice(Plane(0, 24), (Click(32, 32, True),), truth[24])]
    result = load_f3d(shipped("f3d"), "cpu").predict(image, spacing, np.zeros(shape, bool), accepted)
    assert dice(result.mask, truth) > 0.8


@pytest.mark.parametrize("flags", [[], ["--no-transfer", "--no-mask-attention"]])
def test_train_f3d_command_with_transfer_and_ablations(tmp_path, flags):
    import json

    from test_f2d import _tiny_manifest
    from SliceAndConquerLib.cli import main

    manifest = _tiny_manifest(tmp_path)
    f2d_path = save_weights(tmp_path / "f2d.pt", F2D(width=8), {"arch": {"width": 8}})
    write_card(f2d_path, {"model": "f2d"})
    out = tmp_path / "run"
    assert main(["train", "f3d", "--manifest", str(manifest), "--init-2d", str(f2d_path), "--out", str(out),
                 "--steps", "2", "--batch", "1", "--width", "8", "--threads", "1", *flags]) == 0
    card = json.loads((out / "f3d.json").read_text())
    assert card["steps"] == 2 and card["command"].startswith("snc train f3d")
    assert (card["transfer"] is None) == ("--no-transfer" in flags)
    model = load_f3d(out / "f3d.pt", "cpu").model
    assert (model.attention is None) == ("--no-mask-attention" in flags)


def test_transferred_head_starts_as_f2d_and_trains_through_logitnorm():
    from SliceAndConquerLib.training.losses import logit_norm, normalized_focal_loss

    torch.manual_seed(0)
    f2d = F2D(width=8)
    f3d = F3D.from_f2d(f2d)
    assert not f3d.body.head.weight[0].any() and torch.equal(f3d.body.head.weight[1], f2d.head.weight[0])
    image, guidance = torch.rand(1, 2, 16, 16, 16), torch.zeros(1, 4, 16, 16, 16)
    target = torch.zeros(1, 1, 16, 16, 16)
    target[..., 4:12, 4:12, 4:12] = 1
    logits, _ = f3d(image, guidance)
    normalized_focal_loss(logit_norm(logits), target).backward()
    assert f3d.body.head.weight.grad.abs().sum() > 0
