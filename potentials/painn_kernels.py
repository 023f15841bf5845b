"""PaiNN's radial filters as fused Numba kernels, closed under differentiation.

Each interaction channel's filter is W(r) = f_c(r) (rbf(r) W_r + b_r), with rbf_n(r) = sin(nπ r/r_c)/r
(n = 1..M) and the cosine cutoff f_c. Written with the bias as basis function 0 (B_0 = f_c) it is one
matrix product W(r)_pf = Σ_n B_n(r_p) K_nf, K = [b_r; W_r] of shape (M + 1, F). Built with numpy it
takes an (pairs, M) basis, its sin and cos, a BLAS product and several (pairs, F) temporaries
forward, and as many again in each reverse pass. Here the basis of each derivative order d is one
(pairs, M + 1) table per structure (:class:`RadialBasis`: one sin and one cos per pair, the rest by
the recurrence sin((n+1)x) = 2 cos x sin(nx) − sin((n−1)x), the d-th derivative in r by Leibniz's
rule on f_c · sin(nkr) · 1/r), shared by every layer and channel, and three kernels run over the
pairs once each:

- ``radial_apply(c, r, K, d)``:      out[p, f] = c_p Σ_n B⁽ᵈ⁾_n(r_p) K_nf
- ``radial_contract(g, r, K, d)``:   out[p]    = Σ_f g_pf Σ_n B⁽ᵈ⁾_n(r_p) K_nf
- ``radial_weights(c, g, r, d)``:    out[n, f] = Σ_p c_p B⁽ᵈ⁾_n(r_p) g_pf

They are the partial derivatives of one form, T = Σ_pnf c_p B⁽ᵈ⁾_n(r_p) K_nf g_pf, with respect to
g, c and K; the derivative in r raises d by one. So each one's VJP is another of them, and
forces, force training (forces differentiated in the weights) and Hessians all go through the
three kernels, to any order (``d`` is a static parameter).

>>> import numpy as np
>>> r, K = np.array([2.5, 3.0]), np.ones((4, 2))
>>> W = radial_apply(np.ones(2), r, K, d=0, basis=radial_basis(r, 4.5))
>>> n = np.arange(1, 4)
>>> fc = 0.5 * np.cos(np.pi * r / 4.5) + 0.5
>>> bool(np.allclose(W[:, 0], fc * (1 + (np.sin(r[:, None] * n * np.pi / 4.5) / r[:, None]).sum(1))))
True
"""

from __future__ import annotations

import numpy as np
from numba import njit

from diffsim.kernel_cache import heal
from diffsim.primitives import defjvp, defvjp, saves
from diffsim.tracer import Primitive, raw, shape

# ---------------------------------------------------------------- kernels


@njit(cache=True)
def _basis(r, s1, c1, cutoff, m, d, out, inv, fcj):
    """out[n] = d-th derivative of B_n at r (n = 0..m; B_0 = f_c, B_n = f_c sin(nkr)/r), k = π/r_c.
    inv and fcj are scratch rows of length d + 1."""
    if r >= cutoff:
        for n in range(m + 1):
            out[n] = 0.0
        return
    k = np.pi / cutoff
    if d <= 1:  # the two orders forces and force training use, written out
        fc, dfc, rinv = 0.5 * c1 + 0.5, -0.5 * k * s1, 1.0 / r
        sp, sn, cp, cn = 0.0, s1, 1.0, c1
        if d == 0:
            out[0] = fc
            for n in range(1, m + 1):
                out[n] = fc * rinv * sn
                sn, sp = 2.0 * c1 * sn - sp, sn
        else:
            out[0] = dfc
            for n in range(1, m + 1):
                b = sn * rinv
                out[n] = dfc * b + fc * (n * k * cn - b) * rinv  # (sin(nkr)/r)' = (nk cos(nkr) − sin(nkr)/r)/r
                sn, sp = 2.0 * c1 * sn - sp, sn
                cn, cp = 2.0 * c1 * cn - cp, cn
        return
    # derivatives of f_c = (cos x + 1)/2: f_c⁽ᵃ⁾ = k^a cos(x + aπ/2) / 2 for a ≥ 1
    ka = 1.0
    for a in range(d + 1):
        q = a % 4
        cs = c1 if q == 0 else (-s1 if q == 1 else (-c1 if q == 2 else s1))
        fcj[a] = 0.5 * ka * cs + (0.5 if a == 0 else 0.0)
        ka *= k
    # derivatives of 1/r: (−1)^e e! / r^(e+1)
    v = 1.0 / r
    for e in range(d + 1):
        inv[e] = v
        v *= -(e + 1) / r
    # sin(nx), cos(nx) by the recurrence
    sp, cp, sn, cn = 0.0, 1.0, s1, c1
    out[0] = fcj[d]
    for n in range(1, m + 1):
        kn = n * k
        # e-th derivative of sin(n k r)/r for e = 0..d, then Leibniz with f_c
        total = 0.0
        binom_a = 1.0
        for a in range(d + 1):  # f_c⁽ᵃ⁾ × (sin(nkr)/r)⁽ᵈ⁻ᵃ⁾
            e = d - a
            acc = 0.0
            binom_c = 1.0
            kc = 1.0
            for c in range(e + 1):  # sin⁽ᶜ⁾ × (1/r)⁽ᵉ⁻ᶜ⁾
                q = c % 4
                sc = sn if q == 0 else (cn if q == 1 else (-sn if q == 2 else -cn))
                acc += binom_c * kc * sc * inv[e - c]
                binom_c = binom_c * (e - c) / (c + 1)
                kc *= kn
            total += binom_a * fcj[a] * acc
            binom_a = binom_a * (d - a) / (a + 1)
        out[n] = total
        sn, sp = 2.0 * c1 * sn - sp, sn
        cn, cp = 2.0 * c1 * cn - cp, cn


@njit(cache=True)
def _table(r, trig, cutoff, m, d):
    """B⁽ᵈ⁾_n(r_p) of every pair (pairs, m + 1)."""
    out = np.empty((r.shape[0], m + 1))
    inv, fcj = np.empty(d + 1), np.empty(d + 1)
    for p in range(r.shape[0]):
        _basis(r[p], trig[p, 0], trig[p, 1], cutoff, m, d, out[p], inv, fcj)
    return out


@njit(cache=True)
def _radial_apply(c, B, K, out):
    w = np.empty(K.shape[1])
    for p in range(B.shape[0]):
        for f in range(K.shape[1]):  # accumulated in a row of its own: vectorised over f
            w[f] = 0.0
        for n in range(K.shape[0]):
            bn = B[p, n]
            for f in range(K.shape[1]):
                w[f] += bn * K[n, f]
        cp = c[p]
        for f in range(K.shape[1]):
            out[p, f] = cp * w[f]
    return out


@njit(cache=True)
def _radial_contract(g, B, K):
    out = np.empty(B.shape[0])
    w = np.empty(K.shape[1])
    for p in range(B.shape[0]):
        for f in range(K.shape[1]):  # the filter row first (vectorised over f), then one dot product
            w[f] = 0.0
        for n in range(K.shape[0]):
            bn = B[p, n]
            for f in range(K.shape[1]):
                w[f] += bn * K[n, f]
        acc = 0.0
        for f in range(K.shape[1]):
            acc += g[p, f] * w[f]
        out[p] = acc
    return out


@njit(cache=True)
def _radial_weights(c, g, B):
    out = np.zeros((B.shape[1], g.shape[1]))
    for p in range(B.shape[0]):
        cp = c[p]
        for n in range(B.shape[1]):
            bn = cp * B[p, n]
            for f in range(g.shape[1]):
                out[n, f] += bn * g[p, f]
    return out


def _f(*arrays):
    return [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]


def _check(name: str, r, rows: dict, K=None) -> None:
    """Raise, naming the primitive and the argument, unless r is 1-D and each of ``rows`` (label →
    (array, ndim)) has that many axes and one row per pair, and K (if given) is 2-D."""
    if np.ndim(r) != 1:
        raise ValueError(f"{name}: r must be 1-D (one distance per pair), got shape {np.shape(r)}")
    for label, (a, ndim) in rows.items():
        if np.ndim(a) != ndim or np.shape(a)[0] != len(r):
            raise ValueError(f"{name}: {label} has shape {np.shape(a)}, expected {ndim}-D with {len(r)} rows")
    if K is not None and np.ndim(K) != 2:
        raise ValueError(f"{name}: K has shape {np.shape(K)}, expected (n_rbf + 1, F)")


class RadialBasis:
    """The static data the three primitives share for distances ``r`` (one structure or batch):
    sin x and cos x of x = π r / r_c by numpy, once; the basis B⁽ᵈ⁾ (pairs, m + 1) of each order d
    the first time a kernel asks for it (by the recurrence), then kept, so the forward filters of
    every layer and channel read one table and the reverse ones another.

    >>> b = RadialBasis(np.array([2.25]), 4.5)
    >>> b.table(0, 2).round(12).tolist()   # f_c, f_c sin(x)/r, f_c sin(2x)/r at x = π/2
    [[0.5, 0.222222222222, 0.0]]
    """

    def __init__(self, r, cutoff: float) -> None:
        self.r = np.ascontiguousarray(raw(r), dtype=np.float64)
        self.cutoff = float(cutoff)
        x = np.pi / self.cutoff * self.r
        self.trig = np.ascontiguousarray(np.stack([np.sin(x), np.cos(x)], axis=1))
        self.tables: dict = {}

    def table(self, d: int, m: int) -> np.ndarray:
        """B⁽ᵈ⁾_n(r_p), n = 0..m (n = 0: f_c⁽ᵈ⁾, the bias's basis function)."""
        key = (int(d), int(m))
        if key not in self.tables:
            self.tables[key] = _table(self.r, self.trig, self.cutoff, int(m), int(d))
        return self.tables[key]


def radial_basis(r, cutoff: float) -> RadialBasis:
    """The :class:`RadialBasis` of distances ``r`` (their values; derivatives in r come from the
    kernels' order d).

    >>> radial_basis(np.array([1.0, 2.0]), 4.5).trig.shape
    (2, 2)
    """
    return RadialBasis(r, cutoff)


def _static(name, r, basis):
    if len(basis.r) != len(r):
        raise ValueError(f"{name}: the basis holds {len(basis.r)} pairs, r {len(r)}: make it with radial_basis(r)")
    return basis


def _apply_impl(c, r, K, *, d, basis):
    _check("radial_apply", r, {"c": (c, 1)}, K)
    c, K = _f(c, K)
    # the output is numpy's (large arrays on huge pages where the system offers them: fewer page faults)
    out = np.empty((len(c), K.shape[1]))
    return _radial_apply(c, _static("radial_apply", r, basis).table(d, K.shape[0] - 1), K, out)


def _contract_impl(g, r, K, *, d, basis):
    _check("radial_contract", r, {"g": (g, 2)}, K)
    if np.shape(g)[1] != np.shape(K)[1]:
        raise ValueError(f"radial_contract: g has {np.shape(g)[1]} columns and K {np.shape(K)[1]}")
    g, K = _f(g, K)
    return _radial_contract(g, _static("radial_contract", r, basis).table(d, K.shape[0] - 1), K)


def _weights_impl(c, g, r, *, m, d, basis):
    _check("radial_weights", r, {"c": (c, 1), "g": (g, 2)})
    c, g = _f(c, g)
    return _radial_weights(c, g, _static("radial_weights", r, basis).table(d, m))


# ---------------------------------------------------------------- primitives and their rules
# d (derivative order), m (basis size) and basis (from radial_basis) are keyword-only static parameters.

radial_apply = Primitive("painn_radial_apply", _apply_impl)
radial_contract = Primitive("painn_radial_contract", _contract_impl)
radial_weights = Primitive("painn_radial_weights", _weights_impl)


def _m(K) -> int:
    return shape(K)[0] - 1


defvjp(radial_apply,
       lambda h, ans, c, r, K, d, basis: radial_contract(h, r, K, d=d, basis=basis),
       lambda h, ans, c, r, K, d, basis: c * radial_contract(h, r, K, d=d + 1, basis=basis),
       lambda h, ans, c, r, K, d, basis: radial_weights(c, h, r, m=_m(K), d=d, basis=basis))
defvjp(radial_contract,
       lambda k, ans, g, r, K, d, basis: radial_apply(k, r, K, d=d, basis=basis),
       lambda k, ans, g, r, K, d, basis: k * radial_contract(g, r, K, d=d + 1, basis=basis),
       lambda k, ans, g, r, K, d, basis: radial_weights(k, g, r, m=_m(K), d=d, basis=basis))
defvjp(radial_weights,
       lambda H, ans, c, g, r, m, d, basis: radial_contract(g, r, H, d=d, basis=basis),
       lambda H, ans, c, g, r, m, d, basis: radial_apply(c, r, H, d=d, basis=basis),
       lambda H, ans, c, g, r, m, d, basis: c * radial_contract(g, r, H, d=d + 1, basis=basis))
# forward mode: each is linear in its array arguments but r; r's tangent raises d by one
defjvp(radial_apply,
       lambda t, ans, c, r, K, **k: radial_apply(t, r, K, **k),
       lambda t, ans, c, r, K, d, basis: radial_apply(c * t, r, K, d=d + 1, basis=basis),
       lambda t, ans, c, r, K, **k: radial_apply(c, r, t, **k))
defjvp(radial_contract,
       lambda t, ans, g, r, K, **k: radial_contract(t, r, K, **k),
       lambda t, ans, g, r, K, d, basis: t * radial_contract(g, r, K, d=d + 1, basis=basis),
       lambda t, ans, g, r, K, **k: radial_contract(g, r, t, **k))
defjvp(radial_weights,
       lambda t, ans, c, g, r, **k: radial_weights(t, g, r, **k),
       lambda t, ans, c, g, r, **k: radial_weights(c, t, r, **k),
       lambda t, ans, c, g, r, m, d, basis: radial_weights(c * t, g, r, m=m, d=d + 1, basis=basis))
saves([radial_apply, radial_contract, radial_weights], ans=False)

heal(globals())  # damaged Numba cache entries of these kernels are recompiled, not fatal
