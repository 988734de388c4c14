"""Conditioning of a whole network's feature map x ↦ φ(x) (everything before the classifier).

The paper's networks end in global average pooling, so the feature map is wide: it sends
C·H·W input values (3,072 for CIFAR-10) to a few features (the last width: 112 for CIFAR-10's
preset). Its Jacobian J(x) ∈ R^{m×n} with m ≪ n has m singular values. They come exact and
complete from m vector-Jacobian products (one per feature, batched with ``torch.func.vmap``)
followed by a dense SVD of the m×n matrix. No Krylov method and no convergence question arises.

Reported per example, and as a distribution over the examples:

* σ_max, and σ_min = σ_m, the smallest of the m: how weakly some feature direction responds to
  its most effective input perturbation;
* the numerical rank r = #{σ_i > max(m, n)·ε·σ_max}. Features that a ReLU switched off for this
  input (a dead connector channel) have a zero row in J, so r < m is common, and then κ = ∞;
* κ = σ_max/σ_m (∞ when r < m) and the effective κ_r = σ_max/σ_r, the condition number of J on
  the features that respond at all;
* the whole singular spectrum (in the JSON and the figure).

The network is evaluated in eval mode (batch-norm running statistics), in float64 on a copy. The
map analysed is the paper's, from the network's input *after* its own preprocessing (per-image
standardisation, :attr:`~pdenet_analysis.networks.PDECNN.preprocess`), which is applied to ``x``
first: raw images give the conditioning at the standardised images the network sees.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidArgumentError
from .results import Result
from .steps import distribution


@dataclass
class FeaturesResult(Result):
    """The feature map's singular values per example (``examples``: σ_max, σ_min, rank, κ, κ on the
    rank, the whole singular spectrum), exact, and their distributions."""

    name = "features"
    features: int
    inputs: int
    examples: list
    failure: dict | None = None

    method = "dense SVD of the Jacobian from m batched VJPs (exact, complete)"

    def _dist(self, key: str) -> dict:
        return distribution([float(e[key]) for e in self.examples])

    def to_dict(self) -> dict:
        return dict(features=self.features, inputs=self.inputs, method=self.method, examples=self.examples,
                    condition=self._dist("condition"), condition_effective=self._dist("condition_effective"),
                    rank=self._dist("rank"), sigma_max=self._dist("sigma_max"), sigma_min=self._dist("sigma_min"))


def feature_jacobians(model, x: torch.Tensor, rows: int = 64) -> torch.Tensor:
    """J(x_b) = ∂φ(x_b)/∂x_b for every example: a (batch, m, n) tensor (float64), computed with
    at most ``rows`` vector-Jacobian products in flight (memory grows with ``rows``)."""
    from torch.func import jacrev, vmap

    net = copy.deepcopy(model).double().eval()
    for blk in net.blocks:
        blk.check_finite = False  # no host read inside the transformed function
        # the same map whatever its gradient strategy; the reversible one has no torch.func rules
        blk.gradient = "backprop"
    x = net.preprocess(x.detach().double().to(next(net.parameters()).device))

    def phi(xi):
        return net.features(xi.unsqueeze(0), preprocessed=True)[0]

    # bounded memory: at most ``rows`` cotangents through the network at once (all m features of
    # all examples in one vmap would hold m·batch copies of every activation)
    m = int(net.features(x[:1], preprocessed=True).shape[1])
    chunk = min(m, rows)
    per_call = max(1, rows // m)
    parts = [vmap(jacrev(phi, chunk_size=chunk))(x[i : i + per_call]).detach() for i in range(0, x.shape[0], per_call)]
    J = torch.cat(parts)  # (batch, m, C, H, W)
    return J.reshape(J.shape[0], J.shape[1], -1)


def features_conditioning(model, x: torch.Tensor) -> FeaturesResult:
    """Singular values of the feature map's Jacobian for every example of ``x`` (exact: dense SVD
    of the m×n Jacobian, m = number of features)."""
    if not hasattr(model, "features") or not hasattr(model, "blocks"):
        raise InvalidArgumentError("features_conditioning takes a PDECNN (a network with .features and .blocks)")
    if any(b.scheme.adaptive for b in model.blocks):
        raise InvalidArgumentError("features_conditioning needs fixed-step blocks: an adaptive solver's steps depend "
                                   "on the input and are not differentiated through here; use model.with_scheme('rk4', "
                                   "n_steps=...) for a fine fixed-step version of the same network")
    J = feature_jacobians(model, x)
    sv = torch.linalg.svdvals(J).cpu().numpy()  # (batch, m), descending
    m, n = J.shape[1], J.shape[2]
    smax, smin = sv[:, 0], sv[:, -1]
    cut = max(m, n) * np.finfo(np.float64).eps * smax
    rank = (sv > cut[:, None]).sum(axis=1)
    kappa = np.where(rank == m, smax / np.maximum(smin, 1e-300), np.inf)
    kappa_eff = smax / np.maximum(sv[np.arange(len(sv)), np.maximum(rank - 1, 0)], 1e-300)
    per = [dict(sigma_max=float(smax[b]), sigma_min=float(smin[b]), rank=int(rank[b]), condition=float(kappa[b]),
                condition_effective=float(kappa_eff[b]), singular_values=sv[b].tolist()) for b in range(len(sv))]
    return FeaturesResult(m, n, per)
