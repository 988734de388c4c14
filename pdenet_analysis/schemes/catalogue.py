"""Published Butcher tableaux, explicit and implicit, by name.

``get_tableau("rk4")`` returns a :class:`.ButcherTableau`; ``TABLEAUX`` lists every name. The
coefficients are the published ones, written as exact fractions or radicals where the source
gives them so; what each tableau certifies (order, stage order, symplecticity, symmetry,
stability intervals) is computed from them by :class:`.ButcherTableau`, and the test-suite checks
each against its published value. Sources:

* explicit methods: Hairer, Nørsett & Wanner, *Solving ODEs I* (2nd ed.), §II.1 (Runge, Heun,
  Kutta, the 3/8 rule), §II.4 and §II.5 (Merson, Fehlberg, Dormand–Prince 5(4) and 8(7)); Butcher,
  *Numerical Methods for ODEs* (3rd ed., 2016), ch. 3 (Ralston, Butcher's sixth-order method);
  Gill (1951); Shu & Osher (1988) and Spiteri & Ruuth (2002) for the SSP methods; Bogacki &
  Shampine (1989); Cash & Karp (1990); Tsitouras (2011, with the corrected sign of the last
  error weight); Prince & Dormand (1981) for the 8(7) pair, whose rational approximations are
  read from torchdiffeq's table so that the catalogue and the solver agree coefficient for
  coefficient;
* implicit methods: Hairer & Wanner, *Solving ODEs II* (2nd ed.), §IV.5 (Gauss, Radau IA/IIA,
  Lobatto IIIA/IIIB/IIIC) and §IV.6 (SDIRK: Crouzeix's order-3 and Alexander's
  L-stable order-2 methods).
"""

from __future__ import annotations

import functools
import math

from ..errors import UnknownNameError
from .tableau import ButcherTableau

_R2, _R3, _R6, _R15 = math.sqrt(2.0), math.sqrt(3.0), math.sqrt(6.0), math.sqrt(15.0)


def _explicit(name, rows, b, b_hat=None):
    return lambda: ButcherTableau.explicit(rows, b, b_hat=b_hat, name=name)


def _implicit(name, a, b, b_hat=None):
    return lambda: ButcherTableau.from_rows(a, b, b_hat=b_hat, name=name)


def from_torchdiffeq(method: str) -> ButcherTableau:
    """The pair torchdiffeq runs for ``method``, read from its own table: A from ``beta``, b from
    ``c_sol`` and the embedded weights b̂ = c_sol − c_error (torchdiffeq's error estimate is
    h Σ (b_i − b̂_i) k_i)."""
    from torchdiffeq._impl.odeint import SOLVERS

    tab = SOLVERS[method].tableau
    b = [float(x) for x in tab.c_sol]
    rows = [[float(x) for x in row] for row in tab.beta][: len(b) - 1]
    b_hat = [float(s - e) for s, e in zip(tab.c_sol, tab.c_error)]
    return ButcherTableau.explicit(rows, b, b_hat=b_hat, name=method)


_GAMMA_ALEXANDER = 1 - _R2 / 2          # the L-stable SDIRK of order 2
_GAMMA_CROUZEIX = 0.5 + _R3 / 6         # the A-stable SDIRK of order 3

_FACTORIES = {
    # --------------------------------------------------------------- explicit, fixed step
    "euler": _explicit("euler", [], [1.0]),
    "midpoint": _explicit("midpoint", [[1 / 2]], [0.0, 1.0]),
    "heun2": _explicit("heun2", [[1.0]], [1 / 2, 1 / 2]),
    "ralston2": _explicit("ralston2", [[2 / 3]], [1 / 4, 3 / 4]),
    "kutta3": _explicit("kutta3", [[1 / 2], [-1.0, 2.0]], [1 / 6, 2 / 3, 1 / 6]),
    "heun3": _explicit("heun3", [[1 / 3], [0.0, 2 / 3]], [1 / 4, 0.0, 3 / 4]),
    "ralston3": _explicit("ralston3", [[1 / 2], [0.0, 3 / 4]], [2 / 9, 1 / 3, 4 / 9]),
    "wray3": _explicit("wray3", [[8 / 15], [1 / 4, 5 / 12]], [1 / 4, 0.0, 3 / 4]),
    "ssprk3": _explicit("ssprk3", [[1.0], [1 / 4, 1 / 4]], [1 / 6, 1 / 6, 2 / 3]),
    "ssprk43": _explicit("ssprk43", [[1 / 2], [1 / 2, 1 / 2], [1 / 6, 1 / 6, 1 / 6]], [1 / 6, 1 / 6, 1 / 6, 1 / 2]),
    "rk4": _explicit("rk4", [[1 / 2], [0.0, 1 / 2], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    "rk38": _explicit("rk38", [[1 / 3], [-1 / 3, 1.0], [1.0, -1.0, 1.0]], [1 / 8, 3 / 8, 3 / 8, 1 / 8]),
    "gill4": _explicit("gill4", [[1 / 2], [(_R2 - 1) / 2, (2 - _R2) / 2], [0.0, -_R2 / 2, 1 + _R2 / 2]],
                       [1 / 6, (2 - _R2) / 6, (2 + _R2) / 6, 1 / 6]),
    "butcher6": _explicit("butcher6", [[1 / 3], [0.0, 2 / 3], [1 / 12, 1 / 3, -1 / 12],
                                       [-1 / 16, 9 / 8, -3 / 16, -3 / 8], [0.0, 9 / 8, -3 / 8, -3 / 4, 1 / 2],
                                       [9 / 44, -9 / 11, 63 / 44, 18 / 11, 0.0, -16 / 11]],
                          [11 / 120, 0.0, 27 / 40, 27 / 40, -4 / 15, -4 / 15, 11 / 120]),
    # --------------------------------------------------------------- explicit, embedded pairs
    # the embedded weights torchdiffeq's solvers use, so that get_scheme(m).tableau is this table
    "adaptive_heun": _explicit("adaptive_heun", [[1.0]], [1 / 2, 1 / 2], [0.0, 1.0]),
    "fehlberg2": _explicit("fehlberg2", [[1 / 2], [1 / 256, 255 / 256]], [1 / 512, 255 / 256, 1 / 512],
                           [1 / 256, 255 / 256, 0.0]),
    "bosh3": _explicit("bosh3", [[1 / 2], [0.0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]], [2 / 9, 1 / 3, 4 / 9, 0.0],
                       [7 / 24, 1 / 4, 1 / 3, 1 / 8]),
    "merson": _explicit("merson", [[1 / 3], [1 / 6, 1 / 6], [1 / 8, 0.0, 3 / 8], [1 / 2, 0.0, -3 / 2, 2.0]],
                        [1 / 6, 0.0, 0.0, 2 / 3, 1 / 6], [1 / 10, 0.0, 3 / 10, 2 / 5, 1 / 5]),
    "fehlberg45": _explicit("fehlberg45", [[1 / 4], [3 / 32, 9 / 32], [1932 / 2197, -7200 / 2197, 7296 / 2197],
                                           [439 / 216, -8.0, 3680 / 513, -845 / 4104],
                                           [-8 / 27, 2.0, -3544 / 2565, 1859 / 4104, -11 / 40]],
                            [25 / 216, 0.0, 1408 / 2565, 2197 / 4104, -1 / 5, 0.0],
                            [16 / 135, 0.0, 6656 / 12825, 28561 / 56430, -9 / 50, 2 / 55]),
    "cash_karp": _explicit("cash_karp", [[1 / 5], [3 / 40, 9 / 40], [3 / 10, -9 / 10, 6 / 5],
                                         [-11 / 54, 5 / 2, -70 / 27, 35 / 27],
                                         [1631 / 55296, 175 / 512, 575 / 13824, 44275 / 110592, 253 / 4096]],
                           [37 / 378, 0.0, 250 / 621, 125 / 594, 0.0, 512 / 1771],
                           [2825 / 27648, 0.0, 18575 / 48384, 13525 / 55296, 277 / 14336, 1 / 4]),
    "dopri5": _explicit("dopri5", [[1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
                                   [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
                                   [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
                                   [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]],
                        [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0],
                        # Dormand & Prince's (1980) b̂, which torchdiffeq uses; Hairer's DOPRI5 code takes
                        # another order-4 b̂ (5179/57600, 0, 7571/16695, 393/640, −92097/339200, 187/2100, 1/40)
                        [1951 / 21600, 0.0, 22642 / 50085, 451 / 720, -12231 / 42400, 649 / 6300, 1 / 60]),
    "tsit5": _explicit("tsit5", [[0.161], [-0.008480655492356989, 0.335480655492357],
                                 [2.8971530571054935, -6.359448489975075, 4.3622954328695815],
                                 [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
                                 [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
                                  -0.02826905039406838],
                                 [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742,
                                  -3.290069515436081, 2.324710524099774]],
                       [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
                        2.324710524099774, 0.0],
                       # b̂ = b − e with Tsitouras' error weights e (e_7 = −1/66, the corrected sign)
                       [0.09646076681806523 - 0.00178001105222577714, 0.01 - 0.0008164344596567469,
                        0.4798896504144996 + 0.007880878010261995, 1.379008574103742 - 0.1447110071732629,
                        -3.290069515436081 + 0.5823571654525552, 2.324710524099774 - 0.45808210592918697, 1 / 66]),
    "dopri8": lambda: from_torchdiffeq("dopri8"),
    # --------------------------------------------------------------- implicit
    "backward_euler": _implicit("backward_euler", [[1.0]], [1.0]),
    "implicit_midpoint": _implicit("implicit_midpoint", [[1 / 2]], [1.0]),
    "trapezoid": _implicit("trapezoid", [[0.0, 0.0], [1 / 2, 1 / 2]], [1 / 2, 1 / 2]),
    "gauss4": _implicit("gauss4", [[1 / 4, 1 / 4 - _R3 / 6], [1 / 4 + _R3 / 6, 1 / 4]], [1 / 2, 1 / 2]),
    "gauss6": _implicit("gauss6", [[5 / 36, 2 / 9 - _R15 / 15, 5 / 36 - _R15 / 30],
                                   [5 / 36 + _R15 / 24, 2 / 9, 5 / 36 - _R15 / 24],
                                   [5 / 36 + _R15 / 30, 2 / 9 + _R15 / 15, 5 / 36]], [5 / 18, 4 / 9, 5 / 18]),
    "radau_ia3": _implicit("radau_ia3", [[1 / 4, -1 / 4], [1 / 4, 5 / 12]], [1 / 4, 3 / 4]),
    "radau_ia5": _implicit("radau_ia5", [[1 / 9, (-1 - _R6) / 18, (-1 + _R6) / 18],
                                         [1 / 9, (88 + 7 * _R6) / 360, (88 - 43 * _R6) / 360],
                                         [1 / 9, (88 + 43 * _R6) / 360, (88 - 7 * _R6) / 360]],
                           [1 / 9, (16 + _R6) / 36, (16 - _R6) / 36]),
    "radau_iia3": _implicit("radau_iia3", [[5 / 12, -1 / 12], [3 / 4, 1 / 4]], [3 / 4, 1 / 4]),
    "radau_iia5": _implicit("radau_iia5", [[(88 - 7 * _R6) / 360, (296 - 169 * _R6) / 1800, (-2 + 3 * _R6) / 225],
                                           [(296 + 169 * _R6) / 1800, (88 + 7 * _R6) / 360, (-2 - 3 * _R6) / 225],
                                           [(16 - _R6) / 36, (16 + _R6) / 36, 1 / 9]],
                            [(16 - _R6) / 36, (16 + _R6) / 36, 1 / 9]),
    "lobatto_iiia4": _implicit("lobatto_iiia4", [[0.0, 0.0, 0.0], [5 / 24, 1 / 3, -1 / 24], [1 / 6, 2 / 3, 1 / 6]],
                               [1 / 6, 2 / 3, 1 / 6]),
    "lobatto_iiib4": _implicit("lobatto_iiib4", [[1 / 6, -1 / 6, 0.0], [1 / 6, 1 / 3, 0.0], [1 / 6, 5 / 6, 0.0]],
                               [1 / 6, 2 / 3, 1 / 6]),
    "lobatto_iiic2": _implicit("lobatto_iiic2", [[1 / 2, -1 / 2], [1 / 2, 1 / 2]], [1 / 2, 1 / 2]),
    "lobatto_iiic4": _implicit("lobatto_iiic4", [[1 / 6, -1 / 3, 1 / 6], [1 / 6, 5 / 12, -1 / 12],
                                                 [1 / 6, 2 / 3, 1 / 6]], [1 / 6, 2 / 3, 1 / 6]),
    "sdirk2": _implicit("sdirk2", [[_GAMMA_ALEXANDER, 0.0], [1 - _GAMMA_ALEXANDER, _GAMMA_ALEXANDER]],
                        [1 - _GAMMA_ALEXANDER, _GAMMA_ALEXANDER]),
    "sdirk3": _implicit("sdirk3", [[_GAMMA_CROUZEIX, 0.0], [1 - 2 * _GAMMA_CROUZEIX, _GAMMA_CROUZEIX]],
                        [1 / 2, 1 / 2]),
}

#: every catalogued tableau's name
TABLEAUX = tuple(_FACTORIES)


@functools.lru_cache(maxsize=None)
def get_tableau(name: str) -> ButcherTableau:
    """The published tableau ``name`` (one of :data:`TABLEAUX`)."""
    if name not in _FACTORIES:
        raise UnknownNameError("tableau", str(name), _FACTORIES)
    return _FACTORIES[name]()
