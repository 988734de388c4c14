"""Checkpoints: configuration, weights, optimiser, epoch, RNG states and metrics in one file,
written atomically (temporary file, then rename), so a killed run never leaves a torn file."""

from __future__ import annotations

import os

import torch

from ..errors import DataError

FORMAT_VERSION = 1


def save_checkpoint(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save({"format_version": FORMAT_VERSION, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str, map_location="cpu") -> dict:
    if not os.path.exists(path):
        raise DataError(f"model file {path} is missing")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise DataError(f"model file {path} cannot be read ({type(e).__name__}: {e}); it is truncated or not a checkpoint") from e
    if not isinstance(ck, dict) or "model_config" not in ck:
        raise DataError(f"model file {path} is not a pdenet_analysis checkpoint")
    if ck.get("format_version") != FORMAT_VERSION:
        raise DataError(f"model file {path} has format version {ck.get('format_version')}, this library reads {FORMAT_VERSION}")
    return ck


def load_model(path: str, scheme=None, n_steps: int | None = None, map_location="cpu", best: bool = True):
    """Rebuild the network of a checkpoint (best-validation weights if present), optionally with
    another scheme or step count."""
    from ..networks import from_config

    ck = load_checkpoint(path, map_location)
    model = from_config(ck["model_config"])
    state = ck.get("best_state") if best and ck.get("best_state") is not None else ck["model_state"]
    model.load_state_dict(state)
    if scheme is not None or n_steps is not None:
        model = model.with_scheme(scheme, n_steps)
    return model
