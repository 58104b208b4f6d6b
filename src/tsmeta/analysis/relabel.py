"""Relabelling student units and their arrangement on the teacher units.

The K student units are interchangeable, and for an odd activation so are a unit and its
negative (with the sign of its head weight): `alignment` picks, per seed, the permutation
(and signs) that put student k on teacher k (docs/model.md, relabelling). For an activation
that is not odd (relu) J_k and -J_k are different features: units are only permuted, and
matched and classified by the signed R. For linear every rotation of the student units is a
symmetry, so unit-wise labels carry no meaning: `subspace_cosines` measures the learned
subspace instead.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

from tsmeta.activations import DEFAULT_ACTIVATION, activation

ACTIVATION_ATTR = "param_activation"  # the run attribute (io.params_to_attrs); absent: erf
SPECIALISED = 0.5  # |R| of every matched unit above this: the units have specialised


def run_activation(ds: xr.Dataset) -> str:
    """The activation of the run that made ds (its attribute, the default where absent)."""
    return str(ds.attrs.get(ACTIVATION_ATTR, DEFAULT_ACTIVATION))


def last_finite_records(*arrays) -> np.ndarray:
    """Per seed, the index of the last record at which every array (seed, alpha, ...) is
    finite (the state before a divergence); -1 where there is none."""
    first = np.asarray(arrays[0])
    seeds, records = first.shape[:2]
    finite = np.ones((seeds, records), dtype=bool)
    for values in arrays:
        values = np.asarray(values)
        finite &= np.isfinite(values.reshape(seeds, records, -1)).all(axis=-1)
    return np.array([row.nonzero()[0][-1] if row.any() else -1 for row in finite], dtype=int)


def last_finite(values) -> np.ndarray:
    """values (seed, alpha, ...) -> (seed, ...) at each seed's last all-finite record (NaN
    for a seed without one)."""
    values = np.asarray(values)
    out = np.full((values.shape[0],) + values.shape[2:], np.nan)
    for i, last in enumerate(last_finite_records(values)):
        if last >= 0:
            out[i] = values[i, last]
    return out


def _overlap(R: np.ndarray, odd: bool) -> np.ndarray:
    """How much a unit sits on a teacher unit: |R| for an odd activation (a unit and its
    negative are the same feature), the signed R otherwise."""
    return np.abs(R) if odd else R


def alignment(R_final: np.ndarray, odd: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Permutation and signs of the K student units that put student k on teacher k.

    R_final (K, M). Returns (order, signs): new unit i is old unit order[i] times signs[i].
    With K > M the unmatched units follow the matched ones. The signs flip only for an odd
    activation (`odd`); otherwise they are all +1.
    """
    K, M = R_final.shape
    R = np.nan_to_num(R_final)
    score = _overlap(R, odd)
    rows, cols = linear_sum_assignment(-score)
    matched = [int(r) for _, r in sorted(zip(cols, rows))]
    order = np.array(matched + [k for k in range(K) if k not in matched])
    best = R[order, np.argmax(score[order], axis=1)]
    signs = np.where(best < 0, -1.0, 1.0) if odd else np.ones(K)
    return order, signs


def specialised_alignment(R: np.ndarray, odd: bool = True):
    """(order, signs) of `alignment` as tuples, or None where the units have not specialised
    (some matched |R| <= SPECIALISED, or a non-finite entry: still on the plateau, where an
    assignment means nothing)."""
    if not np.isfinite(R).all():
        return None
    order, signs = alignment(R, odd)
    d = min(R.shape)
    matched = _overlap(R[order[:d], np.arange(d)], odd)
    return (tuple(order), tuple(signs)) if matched.min() > SPECIALISED else None


def specialised(R: np.ndarray, odd: bool = True) -> np.ndarray:
    """Whether the student units cover min(K, M) distinct teachers: R (..., K, M), NaN-padded
    (the largest |R| of each unit, the largest signed R where the activation is not odd)."""
    R = np.asarray(R, dtype=float)
    out = np.zeros(R.shape[:-2], dtype=bool)
    for pos in np.ndindex(out.shape):
        r = R[pos]
        r = r[np.isfinite(r).any(axis=1)][:, np.isfinite(r).any(axis=0)]
        if r.size == 0 or not np.isfinite(r).all():
            continue
        out[pos] = len(set(_overlap(r, odd).argmax(axis=1))) == min(r.shape)
    return out


def align(ds: xr.Dataset, orders: dict, signs: dict) -> xr.Dataset:
    """Apply per-seed relabelling (from `alignment`) to R, Q and w0."""
    ds = ds.copy()
    R, Q, w0 = ds["R"].values.copy(), ds["Q"].values.copy(), ds["w0"].values.copy()
    for i, seed in enumerate(ds["seed"].values):
        o, s = orders[int(seed)], signs[int(seed)]
        R[i] = R[i][:, o, :] * s[None, :, None]
        Q[i] = Q[i][:, o][:, :, o] * s[None, :, None] * s[None, None, :]
        w0[i] = w0[i][:, o] * s[None, :]
    ds["R"].values, ds["Q"].values, ds["w0"].values = R, Q, w0
    if "R_sd" in ds:  # the theory's predicted noise sd: permuted, no signs
        sd = {key: ds[key].values.copy() for key in ("R_sd", "Q_sd", "w0_sd")}
        for i, seed in enumerate(ds["seed"].values):
            o = orders[int(seed)]
            sd["R_sd"][i] = sd["R_sd"][i][:, o, :]
            sd["Q_sd"][i] = sd["Q_sd"][i][:, o][:, :, o]
            sd["w0_sd"][i] = sd["w0_sd"][i][:, o]
        for key, value in sd.items():
            ds[key].values = value
    return ds


def align_pair(sim: xr.Dataset, theory: xr.Dataset | None):
    """sim and theory (or None) relabelled per seed by the simulation's last finite record
    (its first record where it has none), signs flipped only for an odd activation."""
    odd = activation(run_activation(sim)).odd
    R = sim["R"].values
    orders, signs = {}, {}
    for i, (seed, last) in enumerate(zip(sim["seed"].values, last_finite_records(R))):
        orders[int(seed)], signs[int(seed)] = alignment(R[i][max(last, 0)], odd)
    return align(sim, orders, signs), (align(theory, orders, signs) if theory is not None else None)


# --- arrangement of the student units on the teacher units --------------------------------


class Arrangement(NamedTuple):
    """Which student units sit on which teacher units.

    counts: number of student units on each teacher unit n (length M, in teacher order);
    off: number of student units switched off (on no teacher unit);
    assignment: per student unit k, the teacher unit it sits on, or -1 when off;
    label: readable summary, e.g. "1-1-1", "2-1-1", "2-2-2", "1-1-0, one unit off".
    """

    counts: tuple[int, ...]
    off: int
    assignment: tuple[int, ...]
    label: str


NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def arrangement(
    R_final: np.ndarray,
    threshold: float = 0.5,
    Q_final: np.ndarray | None = None,
    odd: bool = True,
) -> Arrangement:
    """Classify the final state: which student units share or own which teacher units.

    R_final (K, M) is the student-teacher overlap at the end of a trajectory; Q_final (K, K),
    if given, is the student-student overlap. The overlap of unit k with teacher n is
    |R_kn| / sqrt(Q_kk) when Q_final is given (the cosine of the angle between J_k and B_n
    for T = I, blind to the norm of J_k), |R_kn| otherwise; the signed R_kn where the
    activation is not odd (`odd` False: relu, where -B_n is another feature). Unit k sits on
    the teacher unit of its largest overlap if that overlap is >= threshold; otherwise (or if
    its norm sqrt(Q_kk) is below threshold, or it is not finite) the unit is switched off.

    The label lists the counts per teacher unit in decreasing order ("2-1-1": one teacher
    unit carried by two student units, the others by one each), followed by the number of
    units switched off if any ("1-1-1, one unit off").
    """
    R = np.asarray(R_final, dtype=float)
    if R.ndim != 2:
        raise ValueError(f"R_final must be a (K, M) matrix, got shape {R.shape}")
    K, M = R.shape
    overlap = _overlap(R, odd)
    norm_ok = np.ones(K, dtype=bool)
    if Q_final is not None:
        Q = np.asarray(Q_final, dtype=float)
        if Q.shape != (K, K):
            raise ValueError(f"Q_final must be ({K}, {K}) to match R_final, got {Q.shape}")
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = np.sqrt(np.diag(Q))
            overlap = overlap / norm[:, None]
        norm_ok = np.isfinite(norm) & (norm >= threshold)
    assignment = []
    for k in range(K):
        row = overlap[k]
        if not norm_ok[k] or not np.all(np.isfinite(row)) or row.max() < threshold:
            assignment.append(-1)
        else:
            assignment.append(int(np.argmax(row)))
    counts = tuple(int(sum(1 for a in assignment if a == n)) for n in range(M))
    off = int(sum(1 for a in assignment if a < 0))
    label = "-".join(str(c) for c in sorted(counts, reverse=True))
    if off:
        label += f", {NUMBER_WORDS.get(off, str(off))} unit{'s' if off > 1 else ''} off"
    return Arrangement(counts, off, tuple(assignment), label)


def arrangement_counts(label: str) -> tuple[int, ...]:
    """The per-teacher counts of an arrangement label ("2-1-1, one unit off" -> (2, 1, 1))."""
    head = label.split(",")[0].strip()
    return tuple(int(c) for c in head.split("-")) if head else ()


def run_arrangements(sim: xr.Dataset, threshold: float = 0.5) -> Counter:
    """Arrangement label of each seed at its last finite record (diverged seeds: "diverged")."""
    labels = Counter()
    odd = activation(run_activation(sim)).odd
    R, Q = sim["R"].values, sim["Q"].values
    for i, last in enumerate(last_finite_records(R, Q)):
        diverged = "diverged" in sim and bool(sim["diverged"].values[i])
        if diverged or last < 0:
            labels["diverged"] += 1
            continue
        labels[arrangement(R[i, last], threshold, Q[i, last], odd).label] += 1
    return labels


# --- the learned subspace (linear: every rotation of the units is a symmetry) ---------------


def subspace_cosines(R, Q, T=None) -> np.ndarray:
    """Squared cosines of the principal angles between the span of the teacher rows B and the
    span of the student rows J, largest first: the eigenvalues of T^-1/2 R^T Q^-1 R T^-1/2
    (R^T Q^-1 R for T = I), each in [0, 1], 1 where the subspaces share a direction.
    R (..., K, M), Q (..., K, K), T (..., M, M) or None for I -> (..., M) (min(K, M) of them
    can be nonzero); NaN where Q is singular or not finite. Invariant under J -> O J."""
    R, Q = np.asarray(R, dtype=float), np.asarray(Q, dtype=float)
    M = R.shape[-1]
    out = np.full(R.shape[:-2] + (M,), np.nan)
    for pos in np.ndindex(out.shape[:-1]):
        r, q = R[pos], Q[pos]
        if not (np.isfinite(r).all() and np.isfinite(q).all()):
            continue
        try:
            x = np.linalg.solve(q, r)
        except np.linalg.LinAlgError:
            continue
        overlap = r.T @ x
        if T is not None:
            vals, vecs = np.linalg.eigh(np.asarray(T, dtype=float)[pos])
            root_inv = (vecs / np.sqrt(vals)) @ vecs.T
            overlap = root_inv @ overlap @ root_inv
        out[pos] = np.sort(np.linalg.eigvalsh(0.5 * (overlap + overlap.T)))[::-1]
    return out
