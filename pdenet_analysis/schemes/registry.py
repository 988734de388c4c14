"""The one registry of schemes, by name.

``get_scheme("rk4")`` builds a scheme; ``register_scheme(name, factory)`` adds a user's scheme,
after which the project's property checks (``pdenet_analysis.testing``) and the test-suite's
registry-driven tests apply to it. A factory is built once when it is registered: one that
raises, returns something other than a :class:`~.base.Scheme`, or carries a Butcher tableau
whose rooted-tree order is below the scheme's declared order is refused there. What the messages
need of every scheme (the kinds it accepts, whether it is reversible) is kept from that build, so
listing the reversible schemes never builds them all again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..errors import IncompatibleSchemeError, InvalidArgumentError, UnknownNameError
from .adaptive import ADAPTIVE_METHODS, TorchDiffEq
from .base import MESSAGE_HINTS, Scheme
from .reversible_rk import ReversibleRungeKutta
from .runge_kutta import RK4, ForwardEuler, Heun, Midpoint
from .symplectic import Leapfrog, StormerVerlet, SymplecticEuler
from .tableau import ButcherTableau

_REGISTRY: dict[str, Callable[..., Scheme]] = {
    "euler": ForwardEuler,
    "heun": Heun,
    "midpoint": Midpoint,
    "rk4": RK4,
    "symplectic_euler": SymplecticEuler,
    "verlet": StormerVerlet,
    "leapfrog": lambda: Leapfrog("paper"),
    "leapfrog_symmetric": lambda: Leapfrog("symmetric"),
    # McCallum & Foster's reversible wrapper (coupling=λ as a keyword, default 0.5)
    "reversible_heun": functools.partial(ReversibleRungeKutta, "heun"),
    "reversible_rk4": functools.partial(ReversibleRungeKutta, "rk4"),
}
for _m in ADAPTIVE_METHODS:
    _REGISTRY[_m] = functools.partial(TorchDiffEq, _m)
_BUILTIN = frozenset(_REGISTRY)


#: name -> (operator kinds accepted, reversible), from one build of the scheme
_TRAITS: dict[str, tuple[frozenset, bool]] = {}


def _traits(name: str) -> tuple[frozenset, bool]:
    if name not in _TRAITS:
        scheme = _REGISTRY[name]()
        _TRAITS[name] = (frozenset(scheme.kinds), bool(scheme.reversible))
    return _TRAITS[name]


def _built(name: str, factory: Callable[..., Scheme]) -> Scheme:
    """The factory's scheme, checked: callable with no arguments, a Scheme, and a tableau (if it
    has one) whose certified order reaches the declared one."""
    if not callable(factory):
        raise InvalidArgumentError(f"register_scheme({name!r}, ...) needs a factory (a class or a function that "
                                   f"builds the scheme), got {type(factory).__name__}")
    try:
        scheme = factory()
    except Exception as exc:  # any failure of the user's code is reported as theirs, with its cause
        raise InvalidArgumentError(f"the factory registered as {name!r} raised {type(exc).__name__}: {exc}; "
                                   "a factory must build its scheme with no arguments") from exc
    if not isinstance(scheme, Scheme):
        raise InvalidArgumentError(f"the factory registered as {name!r} returned a {type(scheme).__name__}, not a "
                                   "pdenet_analysis.schemes.Scheme")
    tableau = getattr(scheme, "tableau", None)
    if isinstance(tableau, ButcherTableau) and scheme.order > 0 and tableau.missing_condition(scheme.order):
        raise InvalidArgumentError(f"scheme {name!r} declares order {scheme.order} but its tableau's order "
                                   f"conditions (rooted trees) certify only order {tableau.order(scheme.order)}")
    return scheme


def register_scheme(name: str, factory: Callable[..., Scheme], overwrite: bool = False) -> None:
    """Add a scheme factory under ``name``, after building it once (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a scheme's name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise InvalidArgumentError(f"a scheme named {name!r} is already registered; pass overwrite=True to replace it")
    if name in _BUILTIN:
        raise InvalidArgumentError(f"{name!r} is a built-in scheme and cannot be replaced; register yours under "
                                   "another name")
    scheme = _built(name, factory)
    _REGISTRY[name] = factory
    _TRAITS[name] = (frozenset(scheme.kinds), bool(scheme.reversible))


def unregister_scheme(name: str) -> None:
    """Remove a scheme added by :func:`register_scheme` (the built-in schemes stay)."""
    if name in _BUILTIN:
        raise InvalidArgumentError(f"{name!r} is a built-in scheme and cannot be removed")
    if name not in _REGISTRY:
        raise UnknownNameError("scheme", name, _REGISTRY)
    del _REGISTRY[name]
    _TRAITS.pop(name, None)


def available_schemes() -> list[str]:
    return sorted(_REGISTRY)


def get_scheme(scheme: str | Scheme, **kwargs) -> Scheme:
    """A scheme from its name, its options as keywords (rtol, atol, ... for the adaptive solvers,
    coupling for the reversible Runge–Kutta wrappers). A scheme object is returned as it is; it
    already holds its options, so options given with it are refused rather than dropped."""
    if isinstance(scheme, Scheme):
        if kwargs:
            raise InvalidArgumentError(
                f"options {', '.join(sorted(kwargs))} were given with a scheme object ({scheme!r}), which already holds "
                f"its own ({scheme.options() or 'none'}); pass them with the scheme's name instead, e.g. "
                f"get_scheme({scheme.name!r}, {', '.join(f'{k}=...' for k in sorted(kwargs))})")
        return scheme
    if not isinstance(scheme, str) or scheme not in _REGISTRY:
        raise UnknownNameError("scheme", str(scheme), _REGISTRY)
    cls = _REGISTRY[scheme]
    if kwargs:
        import inspect

        params = inspect.signature(cls).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(k for k in kwargs if k not in accepted)
        if unknown and not takes_any:
            takes = f"takes only {', '.join(accepted)}" if accepted else "takes no options (its step is set by n_steps)"
            raise IncompatibleSchemeError(f"scheme {scheme!r} does not take {', '.join(unknown)}: it {takes}; "
                                          "the adaptive schemes take rtol, atol, max_steps and backend")
    return cls(**kwargs)


def names_accepting(kind: str) -> list[str]:
    """The registered schemes that accept operators of ``kind``."""
    return [n for n in available_schemes() if kind in _traits(n)[0]]


def reversible_names() -> str:
    """The registered reversible schemes with the operator kinds they take, for error messages."""
    return ", ".join(f"{n} ({'/'.join(sorted(_traits(n)[0]))})" for n in available_schemes() if _traits(n)[1])


# the schemes' own error messages name the others through these (schemes.base never imports the registry)
MESSAGE_HINTS.update(accepting=names_accepting, reversible=reversible_names)
