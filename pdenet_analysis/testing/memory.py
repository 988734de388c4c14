"""What autograd keeps for the backward pass: the memory claim of reversible gradients, measured.

``with SavedBytes(exclude=model.parameters()) as saved: loss = f(x)`` counts the bytes of the
distinct storages autograd saves for backward during the block (``saved_tensors_hooks``), each
once, less the storage of ``exclude``: the weights are held whether or not autograd saves a view of
them, so what remains is the activation memory. It is the quantity of the paper's claim (§3.2)
that a reversible network back-propagates with O(1) stored states in its depth, and it is measured
the same way on every device (``benchmarks/bench_memory.py``; tests/test_integrate.py).
"""

from __future__ import annotations

import torch


class SavedBytes:
    """Bytes of the distinct tensors autograd saves for backward inside the ``with`` block, less
    the storage of ``exclude``."""

    def __init__(self, exclude=()):
        self.bytes = 0
        self._seen = {_key(t) for t in exclude}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        key = _key(t)
        if key not in self._seen:
            self._seen.add(key)
            self.bytes += key[1]
        return t

    def __enter__(self) -> "SavedBytes":
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)


def _key(t: torch.Tensor) -> tuple[int, int]:
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()
