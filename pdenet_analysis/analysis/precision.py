"""Floating-point formats of the analyses, and IEEE float32 on GPUs that would use TensorFloat-32.

On NVIDIA GPUs from Ampere on, PyTorch runs float32 convolutions in TensorFloat-32 by default
(cuDNN's ``fp32_precision`` is ``"tf32"``): a 10-bit mantissa, relative round-off 2⁻¹¹ ≈ 4.9·10⁻⁴
instead of float32's 2⁻²⁴ ≈ 6·10⁻⁸. Training is faster for it; an analysis is not a float32
analysis under it. On a GPU under TF32 the float32 reversibility error of the CIFAR-10
Hamiltonian's first block came out two orders of magnitude above the CPU's, and the inputs of
the later blocks (computed by the network's float32 layers) differed enough to move σ_max in the
fourth digit (the GPU runs in docs/benchmarks.md).

:func:`ieee_float32` runs its body with IEEE float32 matrix products and convolutions, so that a
float32 number means the same on every device; the reversibility report adds a
``"tensorfloat32"`` row on CUDA for the precision a float32 training there actually uses.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import UnknownNameError

#: the formats an analysis can be asked for by name; "tensorfloat32" is float32 storage with the
#: GPU's TF32 products (on the CPU it is float32)
DTYPES = {"float64": torch.float64, "float32": torch.float32, "tensorfloat32": torch.float32,
          "bfloat16": torch.bfloat16, "float16": torch.float16}

#: unit round-off of each format (TF32: 10 stored mantissa bits)
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "tensorfloat32": 2.0**-11, "bfloat16": 2.0**-8,
                 "float16": 2.0**-11}


def dtype_named(name) -> tuple[str, torch.dtype]:
    """(name, dtype) for a floating dtype given by name (``"float32"``) or as a ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        for k, v in DTYPES.items():
            if v == name:
                return k, v
    elif name in DTYPES:
        return name, DTYPES[name]
    raise UnknownNameError("dtype", str(name), DTYPES)


@contextlib.contextmanager
def float32_products(tf32: bool = False):
    """Within: float32 matrix products and convolutions on CUDA in IEEE float32 (``tf32=False``)
    or TensorFloat-32 (``tf32=True``); the process's settings are restored on leaving. No effect
    on CPU computations."""
    if hasattr(torch.backends.cudnn, "conv"):  # torch ≥ 2.9: the fp32_precision settings
        flags, value = (torch.backends.cudnn.conv, torch.backends.cuda.matmul), "tf32" if tf32 else "ieee"
        name = "fp32_precision"
    else:  # the older allow_tf32 flags
        flags, value, name = (torch.backends.cudnn, torch.backends.cuda.matmul), tf32, "allow_tf32"
    before = [getattr(f, name) for f in flags]
    for f in flags:
        setattr(f, name, value)
    try:
        yield
    finally:
        for f, b in zip(flags, before):
            setattr(f, name, b)


def ieee_float32():
    """:func:`float32_products` in IEEE float32: what every analysis runs under."""
    return float32_products(tf32=False)
