"""Dense Jacobians of local maps on an image grid from few products, by grouping columns.

A convolutional layer's Jacobian is local: the unit (channel c, pixel p) of the output depends
only on input units within some pixel distance ρ of p (each 3 × 3 convolution adds 1 to ρ; the
paper's TV normalisation, eq. 9, and σ act pixel by pixel). Two columns whose pixels differ by at
least 2ρ + 1 in row or column therefore touch disjoint rows, and one product with the sum of
their unit vectors gives both (Curtis, Powell & Reid, "On the estimation of sparse Jacobian
matrices", IMA J. Appl. Math. 13, 1974). Grouping the units by (channel, row mod P, column
mod P) with P = 2ρ + 1 needs at most C·P² products instead of one per unit: for CIFAR-10's
Hamiltonian first unit (16 hidden channels, ρ = 4) at most 1,296 products instead of 6,087.

ρ is measured, not assumed: from the supports of a few columns. The matrix assembled is then
checked against the map itself on random vectors, ‖R x − J x‖ ≤ 10⁻¹⁰‖J x‖; a map that is not
local within the measured ρ fails this check (an error in any column shows, almost surely) and the
caller computes the columns one by one. So the result is the Jacobian to round-off or nothing.
"""

from __future__ import annotations

import torch

from .linear import JacobianOperator

#: relative agreement ‖R x − J x‖/‖J x‖ the assembled matrix must reach on random vectors
CHECK_TOL = 1e-10


def _spatial_distance(pos: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """max(|Δrow|, |Δcol|) between every unit and unit(s) ``i``: (len(i), n)."""
    return (pos[None, :, 1:] - pos[i][:, None, 1:]).abs().amax(-1)


def local_jacobian(J: JacobianOperator, positions: torch.Tensor, grid: tuple[int, int, int], chunk: int = 64,
                   probes: int = 8, max_fraction: float = 0.7, seed: int = 0, sparse: bool = False):
    """The dense r × r Jacobian of the (unbatched) operator ``J``, whose inputs and outputs are
    the same r units at ``positions`` (r, 3) = (channel, row, column) on a grid of ``grid`` =
    (channels, rows, columns), by grouped columns. Returns (matrix, products used), or None when
    grouping would need more than ``max_fraction``·r products (nothing gained) or the assembled
    matrix fails the check against J on random vectors (the map is not local within the measured
    reach). With ``sparse`` the matrix is a ``scipy.sparse.csr_matrix`` (float64, on the host) of
    its nonzero entries: O(r·C·P²) memory instead of r², for the sizes where r² does not fit."""
    r = J.shape[1]
    if J.shape[0] != r or positions.shape != (r, 3) or r < 2:
        return None
    pos = positions.to(J.device).long()
    g = torch.Generator().manual_seed(seed)
    # the reach ρ: the largest distance from a column's pixel to a row it touches, over a few columns
    picked = torch.randperm(r, generator=g)[: min(probes, r)].to(J.device)
    E = torch.zeros(len(picked), r, dtype=J.dtype, device=J.device)
    E[torch.arange(len(picked)), picked] = 1
    cols = J.apply_columns(E)[:, 0]  # (probes, r)
    dist = _spatial_distance(pos, picked)
    reach = int(torch.where(cols != 0, dist, torch.zeros_like(dist)).max())
    P = 2 * reach + 1
    C, H, W = grid
    key = (pos[:, 0] * P + pos[:, 1] % P) * P + pos[:, 2] % P
    groups, group_of = torch.unique(key, return_inverse=True)
    n_groups = len(groups)
    if n_groups > max_fraction * r:
        return None
    # index of the unit at each (channel, row, column), −1 where there is none
    where = torch.full((C * H * W,), -1, dtype=torch.long, device=J.device)
    where[(pos[:, 0] * H + pos[:, 1]) * W + pos[:, 2]] = torch.arange(r, device=J.device)
    g_chan, g_row, g_col = groups // (P * P), (groups // P) % P, groups % P
    R = None if sparse else torch.zeros(r, r, dtype=J.dtype, device=J.device)
    triplets = []  # (rows, columns, values) of the nonzero entries, with sparse
    rows = torch.arange(r, device=J.device)
    for s in range(0, n_groups, chunk):
        ids = torch.arange(s, min(s + chunk, n_groups), device=J.device)
        E = (group_of[None, :] == ids[:, None]).to(J.dtype)  # each group's units summed
        Y = J.apply_columns(E)[:, 0]  # (groups, r): row k of group q is R[k, the q-unit within ρ of k]
        # the group's member within ρ of output unit k: same residues, nearest row and column
        yy = pos[None, :, 1] + (g_row[ids, None] - pos[None, :, 1] + reach) % P - reach
        xx = pos[None, :, 2] + (g_col[ids, None] - pos[None, :, 2] + reach) % P - reach
        inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        flat = (g_chan[ids, None] * H + yy.clamp(0, H - 1)) * W + xx.clamp(0, W - 1)
        col = torch.where(inside, where[flat], torch.full_like(flat, -1))
        hit = col >= 0
        if sparse:
            hit &= Y != 0
            triplets.append((rows.expand_as(col)[hit].cpu(), col[hit].cpu(), Y[hit].double().cpu()))
        else:
            R[rows.expand_as(col)[hit], col[hit]] = Y[hit]
    x = torch.randn(2, r, generator=g, dtype=torch.float64).to(J.device, J.dtype)
    Jx = J.apply_columns(x)[:, 0]
    if sparse:
        from scipy.sparse import csr_matrix

        i, j, v = (torch.cat(parts).numpy() for parts in zip(*triplets))
        R = csr_matrix((v, (i, j)), shape=(r, r))
        Rx = torch.as_tensor(R @ x.double().cpu().numpy().T).T.to(Jx.device, Jx.dtype)
    else:
        Rx = x @ R.T
    if float((Rx - Jx).norm()) > CHECK_TOL * float(Jx.norm()):
        return None
    return R, n_groups + len(picked) + 2
