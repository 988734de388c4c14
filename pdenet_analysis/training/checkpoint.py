"""Checkpoints: configuration, weights, optimiser, epoch, RNG states and metrics in one file.

* Written atomically (temporary file, then rename), so a killed run never leaves a torn file;
  temporary files a killed run left behind are removed by the next save.
* Read with ``torch.load(weights_only=True)``: only tensors and plain containers and numbers are
  unpickled, so loading a file can never execute code from it. A file that needs more is refused.
* Verified: every tensor's SHA-256 (over its dtype, shape and bytes) is stored with it, and the
  loader recomputes them — flipped bits or a file edited by hand are detected, and the tensors
  that changed are named.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pickle
import warnings

import torch

from ..errors import DataError

#: 3: the network's configuration records its preprocessing (``preprocessing``), which the
#: reloaded network applies; formats 1 and 2 (written when the trainer always standardised each
#: image) reload with the same per-image standardisation. Format 1 (no tensor hashes) is read
#: without verification
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


def _tensors(obj, prefix: str = ""):
    """(path, tensor) for every tensor in nested dicts, lists and tuples, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from _tensors(obj[k], f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")


def tensor_digests(payload: dict) -> dict[str, str]:
    """SHA-256 of every tensor of ``payload`` (dtype, shape and raw bytes), keyed by its path."""
    out = {}
    for path, t in _tensors(payload):
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        out[path] = h.hexdigest()
    return out


def save_checkpoint(path: str, payload: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(glob.escape(path) + ".tmp-*"):  # left by a run killed mid-write
        os.remove(stale)
    tmp = f"{path}.tmp-{os.getpid()}"
    body = {"format_version": FORMAT_VERSION, **payload}
    body["tensor_sha256"] = tensor_digests({k: v for k, v in body.items() if k != "tensor_sha256"})
    torch.save(body, tmp)
    os.replace(tmp, path)


def _require_torch_file(path: str) -> None:
    """Refuse a file that is not a ``torch.save`` archive (a zip holding ``data.pkl``) before any
    unpickling: a metrics file or a log is "not a model file", not a security question."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            raise DataError(f"model file {path} cannot be read: it is truncated or not a checkpoint written by "
                            "pdenet-analysis train")
        with zipfile.ZipFile(path) as z:
            if any(n.endswith("/data.pkl") or n == "data.pkl" for n in z.namelist()):
                return
    elif head[:1] == b"\x80":  # a pickle stream: torch.save's old format, or a plain pickle (refused below)
        return
    raise DataError(f"{path} is not a model file (a pdenet_analysis checkpoint is the checkpoint.pt that "
                    "pdenet-analysis train writes into its --out directory)")


def load_checkpoint(path: str, map_location="cpu") -> dict:
    """Read and verify a checkpoint; every problem is a :class:`~pdenet_analysis.errors.DataError`."""
    if not os.path.exists(path):
        raise DataError(f"model file {path} is missing")
    _require_torch_file(path)
    try:
        with warnings.catch_warnings():  # torch's own advice (weights_only=False) is not for this file
            warnings.simplefilter("ignore")
            ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise DataError(f"model file {path} holds Python objects other than tensors and plain values; it is refused, "
                        "because loading it could run code from it (a pdenet_analysis checkpoint holds none)") from e
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise DataError(f"model file {path} cannot be read ({type(e).__name__}); it is truncated or not a checkpoint "
                        "written by pdenet-analysis train") from e
    if not isinstance(ck, dict) or "model_config" not in ck:
        raise DataError(f"model file {path} is not a pdenet_analysis checkpoint")
    version = ck.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        from .. import __version__

        raise DataError(f"model file {path} has format version {version}, written by a newer pdenet_analysis; this "
                        f"one ({__version__}) reads format versions up to {FORMAT_VERSION}: upgrade pdenet_analysis "
                        "to load it")
    if version not in READABLE_VERSIONS:
        raise DataError(f"model file {path} has format version {version!r}, which no pdenet_analysis wrote; this "
                        f"library reads {', '.join(map(str, READABLE_VERSIONS))}")
    if ck["format_version"] >= 2:
        stored = ck.get("tensor_sha256")
        if not isinstance(stored, dict):
            raise DataError(f"model file {path} has no tensor checksums; it was not written by this library")
        got = tensor_digests({k: v for k, v in ck.items() if k != "tensor_sha256"})
        bad = sorted(set(stored) ^ set(got)) + sorted(k for k in set(stored) & set(got) if stored[k] != got[k])
        if bad:
            shown = ", ".join(b.lstrip("/") for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise DataError(f"model file {path} is corrupt: {len(bad)} tensor(s) do not match their SHA-256 ({shown}); "
                            "restore it from a copy or retrain")
    return ck


def load_model(path: str, scheme=None, n_steps: int | None = None, map_location="cpu", best: bool = True,
               **scheme_kwargs):
    """Rebuild the network of a checkpoint (best-validation weights if present) on the device
    ``map_location``, optionally with another scheme (its options as keywords, e.g. ``coupling``)
    or step count."""
    from ..networks import from_config

    ck = load_checkpoint(path, map_location)
    model = from_config(ck["model_config"])
    state = ck.get("best_state") if best and ck.get("best_state") is not None else ck["model_state"]
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(f"model file {path}: the weights do not fit the network its configuration describes "
                        f"({str(e).splitlines()[0]}...)") from e
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)  # the network where its weights were loaded, not on the CPU by default
    if scheme is not None or n_steps is not None:
        model = model.with_scheme(scheme, n_steps, **scheme_kwargs)
    return model
