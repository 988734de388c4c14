"""Butcher tableaux: rooted trees, order certificates, stage order, symplecticity, symmetry and
stability functions, each against published values (sources cited per table) or an independent
computation (dense determinants, brute-force scans of |R|)."""

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pdenet_analysis as pa
from pdenet_analysis.schemes import ADAPTIVE_METHODS, TABLEAUX, ButcherTableau, ExplicitRungeKutta, get_tableau
from pdenet_analysis.schemes.catalogue import from_torchdiffeq
from pdenet_analysis.schemes.trees import density, nodes, notation, trees_of_order, trees_up_to
from pdenet_analysis.testing import strategies as pst

# --------------------------------------------------------------------------------------------
# Published properties. order, embedded order, stage order, symplectic, symmetric.
# Sources: HNW I = Hairer, Nørsett & Wanner, Solving ODEs I (2nd ed.), §II.1, §II.4, §II.5;
# HW II = Hairer & Wanner, Solving ODEs II (2nd ed.), §IV.5 and §IV.6 (stage orders from the
# simplifying assumptions: Gauss C(s), Radau IA C(s−1), Radau IIA C(s), Lobatto IIIA C(s), IIIB
# C(s−2), IIIC C(s−1)); GNI = Hairer, Lubich & Wanner, Geometric Numerical Integration, §VI.4
# (Gauss symplectic, Cooper's condition) and §V.2 (symmetric: Gauss, Lobatto IIIA/IIIB); Butcher
# 2016, ch. 3 (the sixth-order method); Bogacki & Shampine 1989 (3(2)); Cash & Karp 1990 (5(4)); Tsitouras
# 2011 (5(4)); Prince & Dormand 1981 (8(7)); Fehlberg 1969 (4(5), 2(1)); Merson 1957 (4(3)).
# Every explicit method has stage order 1 (the second stage violates C(2) unless c₂ = 0).
PUBLISHED = {
    "euler": (1, None, 1, False, False),
    "midpoint": (2, None, 1, False, False),
    "heun2": (2, None, 1, False, False),
    "ralston2": (2, None, 1, False, False),
    "kutta3": (3, None, 1, False, False),
    "heun3": (3, None, 1, False, False),
    "ralston3": (3, None, 1, False, False),
    "wray3": (3, None, 1, False, False),
    "ssprk3": (3, None, 1, False, False),
    "ssprk43": (3, None, 1, False, False),
    "rk4": (4, None, 1, False, False),
    "rk38": (4, None, 1, False, False),
    "gill4": (4, None, 1, False, False),
    "butcher6": (6, None, 1, False, False),
    "adaptive_heun": (2, 1, 1, False, False),
    "fehlberg2": (2, 1, 1, False, False),
    "bosh3": (3, 2, 1, False, False),
    "merson": (4, 3, 1, False, False),
    "fehlberg45": (4, 5, 1, False, False),
    "cash_karp": (5, 4, 1, False, False),
    "dopri5": (5, 4, 1, False, False),
    "tsit5": (5, 4, 1, False, False),
    "dopri8": (8, 7, 1, False, False),
    "backward_euler": (1, None, 1, False, False),
    "implicit_midpoint": (2, None, 1, True, True),
    "trapezoid": (2, None, 2, False, True),
    "gauss4": (4, None, 2, True, True),
    "gauss6": (6, None, 3, True, True),
    "radau_ia3": (3, None, 1, False, False),
    "radau_ia5": (5, None, 2, False, False),
    "radau_iia3": (3, None, 2, False, False),
    "radau_iia5": (5, None, 3, False, False),
    "lobatto_iiia4": (4, None, 3, False, True),
    "lobatto_iiib4": (4, None, 1, False, True),
    "lobatto_iiic2": (2, None, 1, False, False),
    "lobatto_iiic4": (4, None, 2, False, False),
    "sdirk2": (2, None, 1, False, False),
    "sdirk3": (3, None, 1, False, False),
}
# FSAL (first same as last): Bogacki–Shampine, Dormand–Prince 5 and 8, Tsitouras (their papers);
# Lobatto IIIA's first row is zero and its last row is b, so it is FSAL too (HW II, §IV.5).
FSAL = {"bosh3", "dopri5", "tsit5", "dopri8", "trapezoid", "lobatto_iiia4"}
# Stability intervals of R(z) = Σ_{k≤p} z^k/k! (every s = p ≤ 4 method): real −2, −2, −2.5127,
# −2.7853 and imaginary 0, 0, √3, 2√2 (HW II, §IV.2; Butcher 2016, ch. 2).
TRUNCATED_EXP = {1: (2.0, 0.0), 2: (2.0, 0.0), 3: (2.5127453266183286, math.sqrt(3)), 4: (2.785293563405282,
                                                                                          2 * math.sqrt(2))}
IMPLICIT = [n for n in TABLEAUX if not get_tableau(n).is_explicit]


def test_the_catalogue_holds_at_least_thirty_published_tableaux():
    assert set(TABLEAUX) == set(PUBLISHED) and len(TABLEAUX) >= 30


# --------------------------------------------------------------------------------------------
# Rooted trees


def test_tree_counts_are_those_of_oeis_a000081():
    assert [len(trees_of_order(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]
    assert len(trees_up_to(8)) == 200 and all(len(set(trees_of_order(n))) == len(trees_of_order(n)) for n in range(9))


def _symmetry(tree) -> int:
    """σ(τ): the order of τ's automorphism group, Π m_k! σ(τ_k)^{m_k} over distinct children."""
    out = 1
    for child, m in Counter(tree).items():
        out *= math.factorial(m) * _symmetry(child) ** m
    return out


@pytest.mark.parametrize("n", range(1, 9))
def test_monotone_labellings_sum_to_n_minus_1_factorial(n):
    """α(τ) = n!/(σ(τ)γ(τ)) counts the monotone labellings of τ, and every recursive tree on n
    nodes is one: Σ_{|τ|=n} α(τ) = (n − 1)! (Butcher 2016, ch. 3)."""
    assert sum(math.factorial(n) // (_symmetry(t) * density(t)) for t in trees_of_order(n)) == math.factorial(n - 1)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(st.integers(1, 5), st.booleans(), st.integers(0, 2**31 - 1))
def test_elementary_weights_equal_the_textbook_expressions(s, explicit, seed):
    """For any A and b: Φ of the eight trees up to order 4, and of the tall and bushy trees of
    order 5, are the textbook sums (HNW I, §II.2): Σb, bᵀc, bᵀc², bᵀAc, bᵀc³,
    bᵀ(c∘Ac), bᵀAc², bᵀA²c, bᵀc⁴, bᵀA³c, with densities 1, 2, 3, 6, 4, 8, 12, 24, 5, 120."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(s, s))
    A = np.tril(A, -1) if explicit else A
    b = rng.normal(size=s)
    tab = ButcherTableau.from_rows(A, b)
    c = A.sum(axis=1)
    textbook = {"•": (b.sum(), 1), "[•]": (b @ c, 2), "[••]": (b @ c**2, 3), "[[•]]": (b @ A @ c, 6),
                "[•••]": (b @ c**3, 4), "[•[•]]": (b @ (c * (A @ c)), 8), "[[••]]": (b @ A @ c**2, 12),
                "[[[•]]]": (b @ A @ A @ c, 24), "[••••]": (b @ c**4, 5), "[[[[•]]]]": (b @ A @ A @ A @ c, 120)}
    found = {cond.notation: cond for cond in tab.order_conditions(5, tol=1.0)}
    for name, (phi, gamma) in textbook.items():
        assert found[name].phi == pytest.approx(phi, rel=1e-12, abs=1e-12) and found[name].expected == 1 / gamma


def test_tree_density_and_notation():
    bushy = ((), (), ())          # [•••]: the root with three leaves
    tall = (((),),)               # [[•]]: a root, its child, its grandchild
    assert nodes(bushy) == 4 and density(bushy) == 4 and notation(bushy) == "[•••]"
    assert nodes(tall) == 3 and density(tall) == 6 and notation(tall) == "[[•]]"


# --------------------------------------------------------------------------------------------
# Certificates against the published values


@pytest.mark.parametrize("name", TABLEAUX)
def test_orders_stage_order_and_structure_are_the_published_ones(name):
    order, embedded, stage_order, symplectic, symmetric = PUBLISHED[name]
    tab = get_tableau(name)
    assert tab.order(max_order=8) == order
    assert tab.embedded_order() == embedded
    assert tab.stage_order() == stage_order
    assert tab.is_symplectic() == symplectic and tab.is_symmetric() == symmetric
    assert tab.is_fsal() == (name in FSAL)


@pytest.mark.parametrize("name", TABLEAUX)
def test_each_order_condition_reports_its_tree_and_residual(name):
    tab = get_tableau(name)
    p = PUBLISHED[name][0]
    conditions = tab.order_conditions(min(p + 1, 8))
    assert [c.tree for c in conditions] == trees_up_to(min(p + 1, 8))
    assert all(c.holds and abs(c.residual) <= c.tolerance < 1e-11 for c in conditions if c.order <= p)
    if p < 8:
        assert not all(c.holds for c in conditions if c.order == p + 1)


@pytest.mark.parametrize("name", TABLEAUX)
def test_stability_function_is_the_determinant_ratio_and_matches_exp_to_the_order(name):
    """R(z) = det(I − zA + z1bᵀ)/det(I − zA) (HW II, §IV.3) at random complex points, by
    dense determinants; and R(z) − e^z = O(z^{p+1}): at z = ±10⁻², R − e^z is within a factor
    of the z^{p+1} term."""
    tab = get_tableau(name)
    A, b, s = tab.matrix, np.array(tab.b), tab.stages
    R = tab.stability_function()
    rng = np.random.default_rng(0)
    for z in rng.normal(size=8) * 1.5 + 1j * rng.normal(size=8) * 1.5:
        dense = np.linalg.det(np.eye(s) - z * A + z * np.outer(np.ones(s), b)) / np.linalg.det(np.eye(s) - z * A)
        assert abs(R(z) - dense) <= 1e-11 * max(1.0, abs(dense))
    p = PUBLISHED[name][0]
    z = 0.01
    assert abs(R(z) - np.exp(z)) <= 2 * z ** (p + 1) + 1e-15
    assert R.is_polynomial == tab.is_explicit


@pytest.mark.parametrize("name", [n for n in TABLEAUX if get_tableau(n).is_explicit
                                  and get_tableau(n).stages == PUBLISHED[n][0] <= 4])
def test_stability_intervals_of_the_truncated_exponential_are_the_published_ones(name):
    R = get_tableau(name).stability_function()
    real, imag = TRUNCATED_EXP[PUBLISHED[name][0]]
    assert R.real_interval() == pytest.approx(real, abs=1e-9)
    assert R.imaginary_interval() == pytest.approx(imag, abs=1e-9)


def _scan(f, top=12.0, n=120001):
    """The first grid point in (0, top] where |f| > 1 + 10⁻⁹, inf if none: an independent, coarse
    reading of a stability interval."""
    x = np.linspace(0, top, n)[1:]
    bad = np.abs(f(x)) > 1 + 1e-9
    return float(x[np.argmax(bad)]) if bad.any() else math.inf


@pytest.mark.parametrize("name", TABLEAUX)
def test_stability_intervals_agree_with_a_scan_of_the_stability_function(name):
    """Each interval against a 10⁻⁴ scan of |R| along the axis. Where |R(iy)| − 1 grows from 0
    like y^{p+1} (forward Euler, the second-order methods, Fehlberg 4(5), Cash–Karp, Butcher's
    sixth order, Prince–Dormand 8), the interval is 0 and the scan sees it only past its 10⁻⁹
    threshold: there the certificate must be 0 and |R(iy)| > 1 already at y = 0.3."""
    R = get_tableau(name).stability_function()
    real, imag = R.real_interval(), R.imaginary_interval()
    scan_real, scan_imag = _scan(lambda x: R(-x)), _scan(lambda y: R(1j * y))
    assert real == scan_real == math.inf or abs(real - scan_real) <= 2e-4
    if imag == 0:
        assert abs(R(0.3j)) > 1
    else:
        assert imag == scan_imag == math.inf or abs(imag - scan_imag) <= 1e-3
    if math.isfinite(real):
        assert abs(R(-real)) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", IMPLICIT)
def test_every_catalogued_implicit_method_is_a_stable(name):
    """Gauss, Radau IA/IIA, Lobatto IIIA/IIIB/IIIC (HW II, §IV.5),
    the trapezoid and backward Euler, Alexander's and Crouzeix's SDIRK (HW II, §IV.6)."""
    R = get_tableau(name).stability_function()
    assert R.is_a_stable() and R.real_interval() == R.imaginary_interval() == math.inf
    y = np.linspace(-50, 50, 2001)
    assert np.all(np.abs(R(1j * y)) <= 1 + 1e-12)


@pytest.mark.parametrize("name", ["implicit_midpoint", "gauss4", "gauss6", "trapezoid", "lobatto_iiia4",
                                  "lobatto_iiib4"])
def test_symmetric_methods_have_unit_modulus_on_the_imaginary_axis(name):
    """R(−z) R(z) = 1 for a symmetric method (GNI, §V.2), so |R(iy)| = 1."""
    R = get_tableau(name).stability_function()
    y = np.linspace(-20, 20, 401)
    assert np.allclose(np.abs(R(1j * y)), 1.0, atol=1e-12)


def test_explicit_methods_are_never_a_stable():
    assert not any(get_tableau(n).stability_function().is_a_stable() for n in TABLEAUX if get_tableau(n).is_explicit)


# --------------------------------------------------------------------------------------------
# Sensitivity: a perturbed coefficient loses the order


def _perturbed(tab: ButcherTableau, where, delta=1e-6) -> ButcherTableau:
    a, b = [list(r) for r in tab.a], list(tab.b)
    b_hat = None if tab.b_hat is None else list(tab.b_hat)
    if where[0] == "a":
        a[where[1]][where[2]] += delta
    else:
        b[where[1]] += delta
    return ButcherTableau.from_rows(a, b, b_hat=b_hat, name=tab.name)  # c = A1 follows the change


def _used_stages(tab: ButcherTableau) -> set[int]:
    """Stages that b or b̂ reads, directly or through later stages (a trailing FSAL stage is read
    by neither: its coefficients belong to the next step)."""
    weights = np.abs(tab.b) + (np.abs(tab.b_hat) if tab.b_hat is not None else 0)
    used = {i for i in range(tab.stages) if weights[i] != 0}
    A = tab.matrix
    changed = True
    while changed:
        new = {j for i in used for j in range(tab.stages) if A[i, j] != 0} - used
        changed, used = bool(new), used | new
    return used


@pytest.mark.parametrize("name", TABLEAUX)
def test_perturbing_any_single_coefficient_by_1e_6_drops_the_certified_order(name):
    """Every entry of A a used stage can depend on (below the diagonal for explicit tableaux, all
    of A for implicit ones) and every weight of b: moved by 10⁻⁶ (c = A1 following), the order of
    b or of b̂ falls. (Order 1 asks only Σ b_i = 1, so the A of a first-order pair-less method,
    backward Euler's, is free.)"""
    tab = get_tableau(name)
    p, q = tab.order(), tab.embedded_order()
    used = _used_stages(tab)
    spots = [("b", i) for i in range(tab.stages)]
    if max(p, q or 0) > 1:
        spots += [("a", i, j) for i in sorted(used) for j in range(tab.stages) if not tab.is_explicit or j < i]
    for where in spots:
        moved = _perturbed(tab, where)
        assert moved.order() < p or (q is not None and moved.embedded_order() < q), (name, where)


# --------------------------------------------------------------------------------------------
# Properties for every tableau in a family (Hypothesis)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(pst.second_order_tableaux())
def test_every_two_stage_second_order_method_has_order_two_and_the_same_stability(tab):
    """c₂ = α, b = (1 − 1/(2α), 1/(2α)) is of order exactly 2 for every α (no two-stage method has
    order 3) and R(z) = 1 + z + z²/2 whatever α (HNW I, §II.1)."""
    assert tab.order() == 2
    np.testing.assert_allclose(tab.stability_polynomial(), [1, 1, 0.5], atol=1e-14)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(st.floats(0.1, 0.9).filter(lambda v: abs(v - 2 / 3) > 0.05), st.floats(0.1, 0.9))
def test_kuttas_two_parameter_family_is_third_order(c2, c3):
    """For c₂ ≠ c₃, c₂ ≠ 2/3, the third-order three-stage method with nodes (0, c₂, c₃) is
    unique (HNW I, §II.1): b₂, b₃ from the quadrature conditions and
    a₃₂ from bᵀAc = 1/6. Its rooted-tree order is exactly 3."""
    if abs(c2 - c3) < 0.05:
        return
    b2 = (3 * c3 - 2) / (6 * c2 * (c3 - c2))
    b3 = (2 - 3 * c2) / (6 * c3 * (c3 - c2))
    a32 = 1 / (6 * b3 * c2)
    tab = ButcherTableau.explicit([[c2], [c3 - a32, a32]], [1 - b2 - b3, b2, b3])
    assert tab.order() == 3


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(pst.tableaux(explicit=True, min_order=2))
def test_an_explicit_methods_stability_polynomial_starts_with_the_exponential(tab):
    """Order p ⇒ R(z) = Σ_{k≤p} z^k/k! + O(z^{p+1}): the first p + 1 coefficients are 1/k!."""
    coeffs = tab.stability_polynomial()
    p = tab.order()
    np.testing.assert_allclose(coeffs[: p + 1], [1 / math.factorial(k) for k in range(p + 1)], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# The schemes and the tableaux agree


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_the_adaptive_schemes_expose_the_pairs_torchdiffeq_runs(method):
    mine, theirs = pa.get_scheme(method).tableau, from_torchdiffeq(method)
    assert mine == get_tableau(method)
    np.testing.assert_array_equal(mine.matrix, theirs.matrix)
    assert mine.b == theirs.b and mine.b_hat == theirs.b_hat
    assert mine.order() == ADAPTIVE_METHODS[method] and mine.embedded_order() == ADAPTIVE_METHODS[method] - 1


@pytest.mark.parametrize("name", [n for n in TABLEAUX if get_tableau(n).is_explicit])
def test_every_explicit_catalogue_tableau_steps_as_a_scheme_with_its_certified_order(name):
    tab = get_tableau(name)
    scheme = ExplicitRungeKutta(tab, name=name)
    assert scheme.order == tab.order() and scheme.n_stages == tab.truncated().stages


def test_an_implicit_tableau_is_certified_but_not_stepped():
    with pytest.raises(pa.IncompatibleSchemeError, match="implicit"):
        ExplicitRungeKutta(get_tableau("gauss4"), 4)


def test_a_declared_order_above_the_certified_one_is_refused_naming_the_failed_tree():
    with pytest.raises(pa.InvalidArgumentError, match=r"certify order 2; the tree \[••\]"):
        ExplicitRungeKutta(ButcherTableau.explicit([[1.0]], [0.5, 0.5]), order=3)
    with pytest.raises(pa.InvalidArgumentError, match="certify order 0"):
        ExplicitRungeKutta(ButcherTableau.explicit([[1.0]], [0.5, 0.4]), order=1)


def test_tableau_rejects_inconsistent_rows_and_bad_shapes():
    with pytest.raises(pa.InvalidArgumentError, match="row sums"):
        ButcherTableau(((0.0, 0.0), (0.5, 0.0)), (0.5, 0.5), (0.0, 1.0))
    with pytest.raises(pa.InvalidArgumentError, match="2×2"):
        ButcherTableau(((0.0,), (0.5, 0.0)), (0.5, 0.5), (0.0, 0.5))
    with pytest.raises(pa.InvalidArgumentError, match="b_hat"):
        ButcherTableau.explicit([[1.0]], [0.5, 0.5], b_hat=[1.0])
    with pytest.raises(pa.InvalidArgumentError, match="finite"):
        ButcherTableau.explicit([[math.nan]], [0.5, 0.5])
    with pytest.raises(pa.InvalidArgumentError, match="must be numbers"):
        ButcherTableau([["x", 0.0], [1.0, 0.0]], [0.5, 0.5], [0.0, 1.0])
    lists = ButcherTableau([[0, 0], [1, 0]], np.array([0.5, 0.5]), [0, 1])  # any sequences: a hashable value
    heun = ButcherTableau.explicit([[1.0]], [0.5, 0.5])
    assert lists == heun and hash(lists) == hash(heun) and lists.order() == 2
    with pytest.raises(pa.InvalidArgumentError, match="rational"):
        get_tableau("gauss4").stability_polynomial()
    with pytest.raises(pa.UnknownNameError, match="did you mean 'dopri5'"):
        get_tableau("dorpi5")


@pytest.mark.parametrize("name", ["euler", "heun", "midpoint", "rk4"])
def test_stability_polynomial_is_truncated_exponential(name):
    s = pa.get_scheme(name)
    coeffs = s.tableau.stability_polynomial()
    expected = [1 / math.factorial(k) for k in range(s.order + 1)]
    np.testing.assert_allclose(coeffs[: s.order + 1], expected, rtol=1e-14)
    assert np.allclose(coeffs[s.order + 1:], 0)


def test_euler_stability_region_is_unit_disc_around_minus_one():
    s = pa.get_scheme("euler")
    assert s.amplification(-2.0) == pytest.approx(1.0)
    assert s.amplification(-2.01) > 1 and s.amplification(-1.99) < 1


@pytest.mark.parametrize("name", ["symplectic_euler", "verlet", "leapfrog", "leapfrog_symmetric"])
def test_partitioned_stability_interval(name):
    s = pa.get_scheme(name)
    assert s.stability_variable == "h^2*lambda"
    z = np.linspace(-4, 0, 41)
    assert np.all(s.amplification(z) <= 1 + 1e-12)
    assert s.amplification(-4.1) > 1 and s.amplification(0.1) > 1


def test_to_markdown_shows_the_butcher_array_and_the_certificates():
    text = get_tableau("dopri5").to_markdown()
    assert "### dopri5" in text and "| **b̂** |" in text and "| order (rooted trees) | 5 |" in text
    assert "| embedded order | 4 |" in text and "| A-stable | False |" in text
    assert "| real stability interval | ∞ |" in get_tableau("radau_iia5").to_markdown()


@pytest.mark.parametrize("name", ["gauss6", "lobatto_iiia4", "radau_iia5", "lobatto_iiic4"])
def test_certificates_do_not_depend_on_the_order_of_the_stages(name):
    """Relabelling the stages (P A Pᵀ, P b) is the same method: its order, stage order,
    symplecticity, symmetry and stability function stay (the symmetry search runs over
    permutations, so a permuted Gauss method is still found symmetric)."""
    tab = get_tableau(name)
    p = list(reversed(range(tab.stages)))
    A = tab.matrix[np.ix_(p, p)]
    moved = ButcherTableau.from_rows(A, np.array(tab.b)[p])
    assert (moved.order(), moved.stage_order(), moved.is_symplectic(), moved.is_symmetric()) == (
        tab.order(), tab.stage_order(), tab.is_symplectic(), tab.is_symmetric())
    z = np.array([-1.0, 0.5j, -3 + 1j])
    np.testing.assert_allclose(moved.stability_function()(z), tab.stability_function()(z), rtol=1e-12)
