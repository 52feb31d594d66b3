"""Shipped weights: a .pt file with a model card (.json) beside it holding its sha256.

Loading checks the checksum first, so a truncated download or a hand-edited file fails with a message
naming the file instead of a pickle traceback or, worse, silently wrong predictions."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..errors import InputError

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "Resources" / "Models"   # inside Slicer
SOURCE_MODELS = Path(__file__).resolve().parents[2] / "Resources" / "Models"    # in a source checkout


class ModelFileError(InputError):
    """A weight file is missing, corrupt or does not match its model card."""


def models_dir() -> Path:
    return PACKAGE_MODELS if PACKAGE_MODELS.exists() else SOURCE_MODELS


def shipped(name: str) -> Path | None:
    """Path of a shipped model's weights (e.g. "f2d"), or None if this installation has none."""
    path = models_dir() / f"{name}.pt"
    return path if path.exists() else None


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path(weights) -> Path:
    return Path(weights).with_suffix(".json")


def read_card(weights) -> dict:
    path = card_path(weights)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model card missing (it holds the weights' checksum)") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: model card is not valid JSON ({exc})") from None


def write_card(weights, card: dict) -> Path:
    card = dict(card, file=Path(weights).name, sha256=sha256(weights),
                size_mb=round(Path(weights).stat().st_size / 2 ** 20, 2))
    path = card_path(weights)
    path.write_text(json.dumps(card, indent=1) + "\n")
    return path


def record_metrics(weights, name: str, metrics: dict) -> Path:
    """Add benchmark numbers to a model card (the checksum is re-verified, not re-made)."""
    card = read_card(weights)
    if card.get("sha256") != sha256(weights):
        raise ModelFileError(f"{weights}: does not match its model card; refusing to add metrics")
    card.setdefault("metrics", {})[name] = metrics
    path = card_path(weights)
    path.write_text(json.dumps(card, indent=1) + "\n")
    return path


def load_state(weights, verify: bool = True) -> dict:
    """The saved {"config", "state_dict"} after checking the file against its card."""
    weights = Path(weights)
    if not weights.exists():
        raise ModelFileError(f"{weights}: weight file not found")
    if verify:
        expected = read_card(weights).get("sha256")
        actual = sha256(weights)
        if expected != actual:
            raise ModelFileError(f"{weights}: checksum {actual[:12]}... does not match the model card "
                                 f"({str(expected)[:12]}...): the file is corrupt or was replaced")
    try:
        saved = torch.load(weights, map_location="cpu", weights_only=True)
        return {"config": dict(saved["config"]), "state_dict": saved["state_dict"]}
    except Exception as exc:  # torch raises many types for a damaged file
        raise ModelFileError(f"{weights}: cannot be loaded as weights ({type(exc).__name__})") from None


def save_weights(path, model: torch.nn.Module, config: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save({"config": config, "state_dict": state}, path)
    return path


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA, else Apple MPS, else CPU; a clear error when an absent accelerator is asked for."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA was requested but this PyTorch has no usable CUDA device "
                         f"(torch {torch.__version__}); choose the cpu or auto device instead")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("Apple MPS was requested but is not available here; choose the cpu or auto device instead")
    return torch.device(requested)
