"""Rooted trees and Butcher's order conditions.

A Runge–Kutta method (A, b, c = A1) has order p exactly when, for every rooted tree τ with at
most p nodes, its elementary weight equals the reciprocal of the tree's density:

    Φ(τ) = bᵀ g(τ) = 1/γ(τ),   g(•) = 1,   g([τ₁ … τ_m]) = (A g(τ₁)) ⊙ … ⊙ (A g(τ_m)),
    γ(•) = 1,   γ([τ₁ … τ_m]) = |τ| · γ(τ₁) ⋯ γ(τ_m),

where [τ₁ … τ_m] is the tree whose root has the subtrees τ₁ … τ_m as children, |τ| its number
of nodes and ⊙ the componentwise product (Butcher, *Numerical Methods for Ordinary Differential
Equations*, 3rd ed. 2016, ch. 3; Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.2). The
conditions hold for implicit A as well; they assume c = A1, which :class:`.ButcherTableau`
checks. There are 1, 1, 2, 4, 9, 20, 48, 115 trees with 1, …, 8 nodes.

A tree is represented canonically as the sorted tuple of its children (the leaf is ``()``), so
equal trees compare equal and hash alike.
"""

from __future__ import annotations

import functools

import numpy as np

Tree = tuple  # a sorted tuple of child trees; () is the single node


def nodes(tree: Tree) -> int:
    """|τ|: the number of nodes."""
    return 1 + sum(nodes(child) for child in tree)


def density(tree: Tree) -> int:
    """γ(τ) = |τ| · Π γ(children)."""
    out = nodes(tree)
    for child in tree:
        out *= density(child)
    return out


def _key(tree: Tree):
    return (nodes(tree), tuple(_key(child) for child in tree))


def _canonical(children) -> Tree:
    return tuple(sorted(children, key=_key))


@functools.lru_cache(maxsize=None)
def trees_of_order(n: int) -> tuple[Tree, ...]:
    """Every rooted tree with ``n`` nodes, once each: the root's children are a multiset of
    trees whose orders sum to n − 1, generated as non-increasing sequences in a fixed order."""
    if n < 1:
        return ()
    if n == 1:
        return ((),)
    ordered = [t for m in range(1, n) for t in trees_of_order(m)]
    rank = {t: i for i, t in enumerate(ordered)}
    found = []

    def extend(children: list, left: int, max_rank: int) -> None:
        if left == 0:
            found.append(_canonical(children))
            return
        for t in ordered[: max_rank + 1]:
            size = nodes(t)
            if size <= left:
                extend(children + [t], left - size, rank[t])

    extend([], n - 1, len(ordered) - 1)
    return tuple(sorted(set(found), key=_key))


def trees_up_to(order: int) -> list[Tree]:
    """Every rooted tree with at most ``order`` nodes, by increasing order."""
    return [t for n in range(1, order + 1) for t in trees_of_order(n)]


def notation(tree: Tree) -> str:
    """Butcher's bracket notation: • for the leaf, [τ₁τ₂…] for a root with those subtrees."""
    if not tree:
        return "•"
    return "[" + "".join(notation(child) for child in tree) + "]"


def stage_weights(A: np.ndarray, order: int) -> dict[Tree, np.ndarray]:
    """g(τ) for every tree with at most ``order`` nodes (the recursion of the module docstring),
    each computed once from its children's."""
    s = A.shape[0]
    out: dict[Tree, np.ndarray] = {}
    for tree in trees_up_to(order):
        g = np.ones(s)
        for child in tree:
            g = g * (A @ out[child])
        out[tree] = g
    return out
