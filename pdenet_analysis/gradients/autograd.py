"""The autograd helpers of the reversible gradient and the adjoint, which the schemes' own
backward steps use too: sums of parameter gradients over a backward pass
(:class:`ParamGrads`), the walk of an autograd graph for tensors from outside the operator
(:func:`outside_leaves`), and the reversal of an additive update with its vector-Jacobian
products in one evaluation (:func:`reverse_update`). They import nothing of the library but its
errors, so the schemes below the gradient strategies can use them.
"""

from __future__ import annotations

import torch

from ..errors import IncompatibleOperatorError


class ParamGrads:
    """The gradient of each parameter in ``params``, summed step by step over a reversible
    backward pass (zeros to start with). Every step adds its contribution through
    :meth:`backward`."""

    def __init__(self, params):
        self.params = tuple(params)
        self.sums = [torch.zeros_like(p) for p in self.params]
        #: while True, every :meth:`backward` first checks that its outputs depend on no tensor
        #: that requires grad beyond ``inputs`` and ``params`` (:func:`outside_leaves`)
        self.check_outside = False

    def backward(self, outputs, inputs: tuple, grad_outputs) -> tuple:
        """Add (∂outputs/∂θ)ᵀ grad_outputs into the sums and return (∂outputs/∂x)ᵀ grad_outputs
        for each x in ``inputs`` (None where the outputs do not depend on x). The returned
        products may share memory with ``grad_outputs`` and with each other (autograd passes a
        gradient through an addition unchanged): update none of them in place."""
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
        if not any(o.requires_grad for o in outputs):  # depends neither on the inputs nor on θ
            return (None,) * len(inputs)
        if self.check_outside:
            require_no_outside_leaves(outputs, (*inputs, *self.params), "the reversible gradient")
        got = torch.autograd.grad(outputs, (*inputs, *self.params), grad_outputs, allow_unused=True)
        for acc, g in zip(self.sums, got[len(inputs):]):
            if g is not None:
                acc.add_(g)
        return got[:len(inputs)]


def outside_leaves(outputs, known) -> list[torch.Tensor]:
    """The tensors that require grad, other than ``known``, on which ``outputs`` depend: the
    leaves of their autograd graph (one walk of it) that are not in ``known``."""
    known_ids = {id(t) for t in known}
    seen, stack, found = set(), [o.grad_fn for o in outputs if o.grad_fn is not None], []
    found += [o for o in outputs if o.grad_fn is None and o.requires_grad and id(o) not in known_ids]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        leaf = getattr(node, "variable", None)  # an AccumulateGrad node holds its leaf
        if leaf is not None:
            if id(leaf) not in known_ids:
                found.append(leaf)
            continue
        stack.extend(nxt for nxt, _ in node.next_functions)
    return found


def require_no_outside_leaves(outputs, known, method: str) -> None:
    """Raise :class:`IncompatibleOperatorError` if ``outputs`` (an evaluation of the operator)
    depend on a tensor that requires grad outside ``known`` (the state and the operator's
    parameters): ``method`` returns gradients for those only, so that tensor's would be lost."""
    outside = outside_leaves(outputs, known)
    if outside:
        raise IncompatibleOperatorError(
            f"the operator depends on {len(outside)} tensor(s) that require grad but are not among its parameters "
            f"(shape(s) {', '.join(str(tuple(t.shape)) for t in outside)}): {method} returns gradients for the "
            "state and the operator's parameters only, so theirs would be lost; make them parameters of the "
            "operator (of a submodule of it), or use gradient='backprop'")


def differentiated_part(part, s, src: torch.Tensor, g_out: torch.Tensor, acc: ParamGrads):
    """One evaluation p = part(s, src) and its vector-Jacobian products with ``g_out``: returns
    (p, (∂p/∂src)ᵀ g_out or None) and adds (∂p/∂θ)ᵀ g_out into ``acc``. The product with respect
    to ``src`` may share memory with ``g_out``: update it not in place."""
    with torch.enable_grad():
        x = src.detach().requires_grad_(True)
        p = part(s, x)
    (g_x,) = acc.backward(p, (x,), g_out)
    return p.detach(), g_x


def reverse_update(part, s, src: torch.Tensor, tgt_next: torch.Tensor, c: float, g_tgt: torch.Tensor,
                   g_src: torch.Tensor, acc: ParamGrads):
    """Undo the additive update tgt_next = tgt + c·part(s, src), which leaves ``src`` unchanged, and
    carry the loss's gradient back through it, with one evaluation of ``part``.

    The evaluation part(s, src) rebuilds tgt = tgt_next − c·part(s, src) (the same operations as
    the scheme's inverse step, so the same bits) and is differentiated at once: the gradient with
    respect to tgt is g_tgt itself, the one with respect to src gains c·(∂part/∂src)ᵀ g_tgt, and
    each parameter c·(∂part/∂θ)ᵀ g_tgt (added into ``acc``). The factor c multiplies g_tgt before
    the products, as backpropagation through the update does: under bf16 autocast the products
    then round alike. Returns (tgt, new g_src)."""
    p, g_x = differentiated_part(part, s, src, g_tgt * c, acc)
    tgt = torch.add(tgt_next, p, alpha=-c)
    return tgt, (g_src if g_x is None else g_src + g_x)
