"""f2D: the network, its window, the training pieces and the weight files."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import make_sphere
from SliceAndConquerLib.clicks import Click, next_click
from SliceAndConquerLib.errors import InputError
from SliceAndConquerLib.models.f2d import F2D, INPUT_SIZE
from SliceAndConquerLib.models.predictor2d import Network2D, load_f2d
from SliceAndConquerLib.models.weights import ModelFileError, pick_device, save_weights, shipped, write_card
from SliceAndConquerLib.models.window import MAX_GROWS, Window, first_window, touches_border, window_for
from SliceAndConquerLib.training.f2d import make_batch, train_step
from SliceAndConquerLib.training.losses import normalized_focal_loss


def _inputs(batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=g), torch.zeros(batch, 1, size, size), \
        torch.zeros(batch, 2, size, size)


def test_forward_shape_and_determinism():
    torch.manual_seed(0)
    model = F2D(width=8).eval()
    image, prev, clicks = _inputs(size=72)
    with torch.no_grad():
        a, b = model(image, prev, clicks), model(image, prev, clicks)
    assert a.shape == (2, 1, 72, 72) and torch.equal(a, b)
    clicks[:, 0, 30:40, 30:40] = 1
    with torch.no_grad():
        assert not torch.equal(model(image, prev, clicks), a), "clicks must reach the output"


def test_only_3x3_and_1x1_convolutions_for_the_acs_conversion():
    kernels = {m.kernel_size for m in F2D(width=8).modules() if isinstance(m, torch.nn.Conv2d)}
    assert kernels <= {(3, 3), (1, 1)}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in F2D(width=8).modules())


def test_window_crop_paste_round_trip_and_mm_square():
    image = np.zeros((60, 80), np.float32)
    image[20:30, 30:50] = 1
    window = Window((25.5, 40.5), 40.0, (1.0, 2.0))  # centred on pixel (25, 40)
    assert window.size_px == (40.0, 20.0)
    crop = window.crop(image, 64)
    assert crop.shape == (64, 64) and crop.max() == 1
    back = window.paste(crop, image.shape, fill=np.full(image.shape, -1, np.float32))
    inside = back >= 0
    assert inside[25, 40] and not inside[0, 0]
    assert np.abs(back[inside] - image[inside]).mean() < 0.05
    row, col = window.to_net(25, 40, 64)
    assert abs(row - 31.5) < 1 and abs(col - 31.5) < 1


def test_window_rule():
    previous = np.zeros((100, 100), bool)
    first = window_for(previous, [Click(50, 50, True)], (1.0, 1.0))
    assert first == first_window(50, 50, (100, 100), (1.0, 1.0)) and first.side_mm == 60.0
    previous[40:60, 45:55] = True
    later = window_for(previous, [Click(50, 50, True), Click(90, 90, True)], (1.0, 1.0))
    top, left = later.origin
    assert top <= 40 and left <= 45 and top + later.size_px[0] >= 91, "covers mask and far positive click"
    mask_net = np.zeros((32, 32), bool)
    mask_net[0, 10] = True
    assert touches_border(mask_net, Window((50, 50), 20, (1, 1)), (100, 100))
    assert not touches_border(mask_net, Window((50, 50), 200, (1, 1)), (100, 100))


class _FixedOutput(torch.nn.Module):
    """Stands in for the network to test the window rule alone: a disk of `radius` net pixels at the
    window's centre (radius None: everything), counting its calls."""
    def __init__(self, radius):
        super().__init__()
        self.radius, self.calls = radius, 0

    def forward(self, image, previous, clicks):
        self.calls += 1
        size = image.shape[-1]
        if self.radius is None:
            return torch.full_like(image, 5.0)
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        inside = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 < self.radius ** 2
        return torch.where(inside, 5.0, -5.0).expand_as(image).clone()


def test_window_grows_only_when_the_mask_reaches_its_border():
    image, empty = np.zeros((300, 300), np.float32), np.zeros((300, 300), bool)
    click = [Click(150, 150, True)]
    small = _FixedOutput(radius=4)  # a small target: kept from the first window (no growing)
    mask = Network2D(small, "cpu").predict(image, empty, click, (1.0, 1.0))
    assert small.calls == 1 and mask[150, 150] and 0 < mask.sum() < 100
    filling = _FixedOutput(radius=None)  # the mask fills the window: grow, at most MAX_GROWS times
    mask = Network2D(filling, "cpu").predict(image, empty, click, (1.0, 1.0))
    assert filling.calls == 1 + MAX_GROWS and mask.sum() > 0.9 * mask.size


def test_simulated_clicks_land_in_the_error_region():
    rng = np.random.default_rng(0)
    truth = make_sphere((1, 64, 64), radius=20)[0]
    pad = (INPUT_SIZE - 64) // 2
    samples = [(np.random.rand(INPUT_SIZE, INPUT_SIZE).astype(np.float32), np.pad(truth, pad), 1.0)] * 4
    images, truths, previous, clicks, weights = make_batch(samples, rng, curriculum=False)
    for t, p, cs in zip(truths, previous, clicks):
        first = cs[0]
        error = (t & ~p) if first.positive else (p & ~t)
        assert error[first.row, first.col]
    pred = truths[0].copy()
    pred[pad + 20: pad + 30, pad + 10: pad + 50] = False
    click = next_click(pred, truths[0])
    assert click.positive and truths[0][click.row, click.col] and not pred[click.row, click.col]


def test_loop_starts_give_prior_like_previous_masks(tmp_path):
    """--loop-starts: that share of samples starts from a previous mask as rough as the shape prior's
    (DSC ~0.6), the mild corruption stays near the truth; clicks still land in the error."""
    from SliceAndConquerLib.cli import main
    from SliceAndConquerLib.metrics import dice

    rng = np.random.default_rng(0)
    truth = np.pad(make_sphere((1, 64, 64), radius=20)[0], (INPUT_SIZE - 64) // 2)
    samples = [(np.zeros((INPUT_SIZE, INPUT_SIZE), np.float32), truth, 1.0)] * 40
    _, truths, previous, clicks, _ = make_batch(samples, rng, curriculum=False, loop_starts=0.6)
    scores = [dice(p, t) for p, t in zip(previous, truths) if p.any()]
    assert 24 <= len(scores) <= 40
    assert 0.3 < np.mean(scores) < 0.85
    for t, p, cs in zip(truths, previous, clicks):
        if p.any() and (p != t).any():
            error = (t & ~p) if cs[0].positive else (p & ~t)
            assert error[cs[0].row, cs[0].col]
    _, _, previous, _, _ = make_batch(samples, np.random.default_rng(0), curriculum=False)
    assert sum(p.any() for p in previous) < 20  # the default recipe: a fifth start from a mask
    assert main(["train", "f2d", "--manifest", str(tmp_path / "train.json"), "--out", str(tmp_path / "run"),
                 "--steps", "1", "--loop-starts", "0.9"]) == 2


def test_training_steps_lower_the_loss_on_a_toy_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = F2D(width=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    truth = make_sphere((1, INPUT_SIZE, INPUT_SIZE), radius=INPUT_SIZE // 5)[0]
    image = (0.2 + 0.6 * truth).astype(np.float32)
    batch = make_batch([(image, truth, 1.0)] * 2, rng, curriculum=True)
    losses = [train_step(model, optimizer, *[x if not isinstance(x, list) else list(x) for x in batch],
                         np.random.default_rng(1), 0, torch.device("cpu"))[0] for _ in range(6)]
    assert losses[-1] < losses[0]


def test_nfl_is_lower_for_better_predictions():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    good = normalized_focal_loss((target * 2 - 1) * 5, target)
    bad = normalized_focal_loss(-(target * 2 - 1) * 5, target)
    assert good < bad


def test_weights_round_trip_and_corruption_is_refused(tmp_path):
    model = F2D(width=8)
    path = save_weights(tmp_path / "f2d.pt", model, {"arch": {"width": 8}})
    write_card(path, {"model": "f2d"})
    loaded = load_f2d(path, "cpu")
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="f2d.pt: checksum"):
        load_f2d(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_f2d(tmp_path / "missing.pt")
    shutil.copy(path, tmp_path / "nocard.pt")
    with pytest.raises(ModelFileError, match="model card missing"):
        load_f2d(tmp_path / "nocard.pt")


def test_missing_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="CUDA was requested"):
        pick_device("cuda")
    assert pick_device("auto").type in ("cpu", "mps")


def _tiny_manifest(tmp_path) -> Path:
    image = np.random.default_rng(0).normal(0, 5, (24, 40, 40)).astype(np.float32)
    label = make_sphere((24, 40, 40), radius=10).astype(np.uint8)
    image += 100 * label
    for name, array in (("img.nrrd", image), ("lab.nrrd", label)):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / name))
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"cases": [{"name": "toy/1", "image": "img.nrrd", "label": "lab.nrrd", "value": 1}]}))
    return manifest


def test_train_command_resumes_and_writes_a_model_card(tmp_path):
    from SliceAndConquerLib.cli import main

    manifest = _tiny_manifest(tmp_path)
    args = ["train", "f2d", "--manifest", str(manifest), "--out", str(tmp_path / "run"), "--batch", "2",
            "--width", "8", "--threads", "1"]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "4", "--resume"]) == 0
    card = json.loads((tmp_path / "run" / "f2d.json").read_text())
    assert card["steps"] == 4 and card["command"].startswith("snc train f2d")
    load_f2d(tmp_path / "run" / "f2d.pt")  # checksum matches
    # Fine-tuning starts from the trained weights in their own width (lr 0: nothing moves).
    tuned = tmp_path / "tuned"
    assert main(["train", "f2d", "--manifest", str(manifest), "--out", str(tuned), "--batch", "2",
                 "--width", "16", "--threads", "1", "--steps", "1", "--lr", "0",
                 "--init", str(tmp_path / "run" / "f2d.pt")]) == 0
    before, after = load_f2d(tmp_path / "run" / "f2d.pt").model, load_f2d(tuned / "f2d.pt").model
    assert after.image_conv.out_channels == 8
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    card = json.loads((tuned / "f2d.json").read_text())
    assert card["init"]["sha256"] == json.loads((tmp_path / "run" / "f2d.json").read_text())["sha256"]


def test_training_pack_holds_the_same_volumes_and_trains_with_workers(tmp_path):
    from SliceAndConquerLib.cli import main
    from SliceAndConquerLib.training.sampler import TrainingVolumes

    manifest = _tiny_manifest(tmp_path)
    pack = tmp_path / "train.npz"
    assert main(["data", "pack", "--manifest", str(manifest), "--out", str(pack)]) == 0
    direct, packed = TrainingVolumes(manifest), TrainingVolumes(pack)
    assert np.array_equal(direct.images[0], packed.images[0]) and np.array_equal(direct.labels[0], packed.labels[0])
    assert direct.spacings == packed.spacings and len(direct.targets) == len(packed.targets) == 1
    # Batches made by a DataLoader worker process, as on a GPU machine.
    assert main(["train", "f2d", "--manifest", str(pack), "--out", str(tmp_path / "run"), "--batch", "2",
                 "--width", "8", "--threads", "1", "--steps", "2", "--workers", "1"]) == 0
    assert json.loads((tmp_path / "run" / "f2d.json").read_text())["recipe"]["data_workers"] == 1
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a training pack"):
        TrainingVolumes(tmp_path / "bad.npz")


def test_benchmark_reports_click_curves_baseline_and_sources(tmp_path):
    from SliceAndConquerLib.evaluation.benchmark_f2d import benchmark
    from SliceAndConquerLib.models.predictor2d import Network2D

    torch.manual_seed(0)
    result = benchmark(_tiny_manifest(tmp_path), Network2D(F2D(width=8), "cpu"), max_clicks=3, progress=False)
    assert result["slices"] == 3 and len(result["mean_dice_per_click"]) == 3  # one slice per axis
    assert set(result["by_source"]) == {"toy"} and result["by_source"]["toy"]["slices"] == 3
    assert set(result["by_group"]) == {"toy"} and result["macro"]["dice_at"] == result["dice_at"]
    assert result["thick_planes"] == {"slices": 0}
    # GrabCut on a bright sphere is good from the first click; the untrained network is not.
    assert result["baseline"]["dice_at"]["3"] > 0.8 > result["dice_at"]["1"]
    assert 1 <= result["noc90"] <= 3


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_distributed_training_with_two_gloo_processes(tmp_path):
    manifest = _tiny_manifest(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         "-m", "SliceAndConquerLib", "train", "f2d", "--manifest", str(manifest), "--out", str(tmp_path / "ddp"),
         "--steps", "2", "--batch", "2", "--width", "8", "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[:3000] + "\n...\n" + result.stderr[-1000:]  # ranks first
    card = json.loads((tmp_path / "ddp" / "f2d.json").read_text())
    assert card["processes"] == 2 and card["steps"] == 2


@pytest.mark.skipif(shipped("f2d") is None, reason="no shipped f2D weights yet")
def test_shipped_model_segments_a_bright_disk_from_one_click():
    from SliceAndConquerLib.metrics import dice

    truth = make_sphere((1, 160, 160), radius=30)[0]
    rng = np.random.default_rng(0)
    image = np.clip(0.25 + 0.5 * truth + rng.normal(0, 0.03, truth.shape), 0, 1).astype(np.float32)
    predictor = load_f2d(shipped("f2d"), "cpu")
    mask = predictor.predict(image, np.zeros_like(truth), [Click(80, 80, True)], (1.0, 1.0))
    assert dice(mask, truth) > 0.9


def test_oversample_draws_a_source_more_often_and_rejects_unknown_sources(tmp_path):
    from SliceAndConquerLib.cli import build_parser
    from SliceAndConquerLib.training.sampler import TrainingVolumes

    manifest = _tiny_manifest(tmp_path)
    cases = json.loads(manifest.read_text())["cases"]
    cases.append(dict(cases[0], name="ct/1"))
    manifest.write_text(json.dumps({"cases": cases}))
    assert np.allclose(TrainingVolumes(manifest).draw, [0.5, 0.5])
    assert np.allclose(TrainingVolumes(manifest, {"ct": 3.0}).draw, [0.25, 0.75])
    with pytest.raises(InputError, match="no targets from mri to oversample"):
        TrainingVolumes(manifest, {"mri": 2.0})
    args = build_parser().parse_args(["train", "f2d", "--manifest", "m.json", "--out", "o",
                                      "--oversample", "ct=3", "--oversample", "toy=0.5"])
    assert dict(args.oversample) == {"ct": 3.0, "toy": 0.5}
    for bad in ("ct", "ct=0", "=2", "ct=two", "ct=inf", "ct=nan"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "f2d", "--manifest", "m.json", "--out", "o", "--oversample", bad])
