"""The paper's preprocessing and augmentation (spec §5.2), on whole batches on their device.

* ``standardize``: each image minus its mean, divided by max(std, 1/sqrt(numel)) over all its
  pixels and channels (the authors' ``normalizeData.m``); no data-set statistics.
* ``random_flip``: flips half of the batch along the width.
* ``random_crop``: zero-pads by p pixels on each side and crops back at a random offset in
  {0..2p} per image (p = size/16: 2 for CIFAR's 32, 6 for STL's 96, as the authors' c/2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf


def standardize(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, unbiased=False, keepdim=True).clamp_min(flat.shape[1] ** -0.5)
    return ((flat - mean) / std).view_as(x)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    b = x.shape[0]
    idx = torch.randperm(b, generator=generator, device="cpu")[: b // 2].to(x.device)
    out = x.clone()
    out[idx] = x[idx].flip(-1)
    return out


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    if pad <= 0:
        return x
    b, c, h, w = x.shape
    xp = nnf.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device="cpu").to(x.device)
    rows = (off[:, 0:1] + torch.arange(h, device=x.device)).view(b, 1, h, 1).expand(b, c, h, w)
    cols = (off[:, 1:2] + torch.arange(w, device=x.device)).view(b, 1, 1, w).expand(b, c, h, w)
    return xp[torch.arange(b, device=x.device).view(b, 1, 1, 1), torch.arange(c, device=x.device).view(1, c, 1, 1), rows, cols]


def augment(x: torch.Tensor, generator: torch.Generator | None = None, flip: bool = True) -> torch.Tensor:
    """Flip (if ``flip``) and pad-crop by size/16, the paper's training augmentation."""
    if flip:
        x = random_flip(x, generator)
    return random_crop(x, x.shape[-1] // 16, generator)
