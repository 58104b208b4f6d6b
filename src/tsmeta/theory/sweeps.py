"""Theory-only sweeps: the FO-ANIL ODE over a grid of run parameters, batched.

A sweep (`theory_sweep` entry of an experiment, see `config/schema.yaml`) is

- `base`: a complete dict of run parameters (defaults, experiment base, sweep base merged);
- `grid`: run-parameter name -> list of values, or {start, stop, num, scale: linear|log};
  the members are the cartesian product of the axes;
- `levels`: eps_meta levels whose first crossing alpha is recorded;
- `search_eta_J` (optional): a second search, list or {start, stop, num, scale} of eta_J
  values. Its members are the grid's axes except `eta_w` (fixed at the base eta_w), times an
  `eta_J` axis with these values. Used by the rates_vs_K figure: the grid searches the
  minimal eta_w at the base eta_J, `search_eta_J` the minimal eta_J at the base eta_w.
  Its variables carry the prefix `jsearch_` and the dim `eta_J` (the main grid may not
  have an `eta_J` axis then).

Every member starts from the initial overlaps (R0, Q0, T, w0) of seed `base['seed_offset']`
as drawn by `tsmeta.tasks.initial_state` for that member's (N, K, M, init, ...). All members
with the same (K, M, alpha_final), of both searches, are integrated as ONE batched system
(different initial states and parameters are batch entries); groups of different (K, M)
follow one another.

Integration: the internals of `tsmeta.theory.ode` (valid domain, divergence events, records),
driven here so that the implicit methods get the block-diagonal structure of the batch:
BDF and Radau get `jac_sparsity` (one dense block per member) and a vectorised right-hand
side, so a Jacobian costs one batched evaluation of (state size) columns; LSODA gets the band
width of the blocks. Explicit methods (RK45, ...) are driven exactly as `integrate` does.
Why this matters: at large rates the ODE is stiff near the fixed point (eigenvalues grow
with eta_J and eta_w), and an explicit batched step follows the stiffest member: one member
at eta_J = 30, eta_w = 40 costs RK45 ~50k evaluations to alpha = 450 (BDF: ~1k), and a
15 x 15 phase diagram took ~330-600 s with RK45 against ~10 s with BDF (rtol 1e-6; 2 shared
cores). Use `method: BDF` (rtol 1e-6) for sweeps. A member that runs into the singular edge
of the domain can stall an implicit solver; it is split off and integrated alone with RK45
(`_adaptive_blocks`), so the batch goes on.

alpha_to_level: first crossing of eps_meta below each level on a fine log grid of
`N_FINE` records (0.01 .. alpha_final), refined by linear interpolation of log eps_meta in
log alpha between the two records around the crossing.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time

import numpy as np
import xarray as xr
from scipy.optimize import brentq
from scipy.sparse import block_diag

from tsmeta.io import params_to_attrs
from tsmeta.params import RunParams
from tsmeta.tasks import initial_state
from tsmeta.theory.closed_form import Physics, eps_meta_closed_form
from tsmeta.theory.ode import (
    _SOLVERS,
    DEFAULT_MAX_RHS_EVALS,
    DEFAULT_SETTINGS,
    _edge,
    _fixed_rk4,
    _Layout,
    _margins,
    _reshaped,
    _Run,
    _terms,
)

N_FINE = 400  # records for the threshold crossings (log-spaced, 0.01 .. alpha_final)
N_COARSE = 60  # records of the eps_meta curves in the output (the `alpha` dim)
ALPHA_MIN = 0.01  # first positive record
SWEEP_KEYS = ("base", "grid", "levels", "search_eta_J")
# run parameters that fix a member's initial state (tasks.initial_state with one seed)
STATE_KEYS = (
    "N",
    "K",
    "M",
    "init",
    "init_std",
    "init_perturbation",
    "w0_std",
    "teacher_init",
    "seed_offset",
)
_IMPLICIT_SPARSE = ("BDF", "Radau")
STALL_H = 1e-9  # a step shorter than this times max(alpha, 1e-3) counts as stalled
STALL_STEPS = 3  # ... and this many such steps split the stalling member off the batch
STALL_WINDOW, STALL_PROGRESS = 50, 5e-3  # or: log(alpha) advanced < 5e-3 in 50 steps
CHUNK_ELEMENTS = 4e6  # bound on members * K^2 * D^2 (the I4 tensor) per evaluation
_PREFIX = {"main": "", "eta_J": "jsearch_"}


# --- the grid -----------------------------------------------------------------------------


def axis_values(spec) -> list:
    """Values of one axis: a list, or {start, stop, num, scale: linear|log}."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"start", "stop", "num", "scale"})
        if unknown or not {"start", "stop", "num"} <= set(spec):
            raise ValueError(f"range spec needs start, stop, num (and scale), got {spec!r}")
        scale = spec.get("scale", "linear")
        num = int(spec["num"])
        if scale == "log":
            if spec["start"] <= 0 or spec["stop"] <= 0:
                raise ValueError(f"a log range needs positive start and stop, got {spec!r}")
            values = np.geomspace(spec["start"], spec["stop"], num)
        elif scale == "linear":
            values = np.linspace(spec["start"], spec["stop"], num)
        else:
            raise ValueError(f"scale must be linear or log, got {scale!r}")
        return [float(v) for v in values]
    if isinstance(spec, (list, tuple)) and len(spec) >= 1:
        return list(spec)
    raise ValueError(f"an axis is a non-empty list or a range spec, got {spec!r}")


def searches(sweep: dict) -> dict[str, dict[str, list]]:
    """The searches of a sweep: name -> {axis: values} ('main', and 'eta_J' if requested)."""
    unknown = sorted(set(sweep) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"unknown theory_sweep key(s) {unknown}; allowed: {list(SWEEP_KEYS)}")
    grid = sweep.get("grid") or {}
    if not grid:
        raise ValueError("theory_sweep.grid needs at least one axis")
    main = {}
    for name, spec in grid.items():
        values = axis_values(spec)
        coerced = [getattr(RunParams.from_dict({name: v}), name) for v in values]
        if len(set(coerced)) != len(coerced):
            raise ValueError(f"theory_sweep.grid.{name} has repeated values {coerced}")
        main[name] = coerced
    out = {"main": main}
    if sweep.get("search_eta_J") is not None:
        if "eta_J" in main:
            raise ValueError("search_eta_J needs a grid without an eta_J axis")
        jvals = [float(v) for v in axis_values(sweep["search_eta_J"])]
        out["eta_J"] = {**{k: v for k, v in main.items() if k != "eta_w"}, "eta_J": jvals}
    return out


def member_params(base: dict, point: dict) -> RunParams:
    """RunParams of a member; the ODE is FO-ANIL's, whatever the algorithm (as make_theory)."""
    params = RunParams.from_dict({**base, **point})
    return dataclasses.replace(params, algorithm="fo-anil", seeds=1)


# --- batched integration with block-diagonal Jacobians ------------------------------------


class _BlockSystem:
    """Active members as one flat system; `fun` also takes (n, k) arrays (vectorised)."""

    def __init__(self, T, phys: Physics, lay: _Layout, finite_v: bool):
        self.T, self.phys, self.lay, self.finite_v = T, phys, lay, finite_v
        self.B = T.shape[0]
        self.nfev = 0  # right-hand sides of the whole batch (a column of a vectorised call: 1)
        self._tiled = {}

    def _tile(self, k):
        if k not in self._tiled:
            idx = np.tile(np.arange(self.B), k)
            self._tiled[k] = (self.T[idx], self.phys.take(idx))
        return self._tiled[k]

    def deriv(self, y, T, phys):
        """Right-hand side of members y (n, size) with constants T (n, M, M), phys (n,),
        in chunks that bound the memory of the (K, K, D, D) tensors."""
        K, D = self.lay.K, self.lay.K + 2 * self.lay.M
        step = max(1, int(CHUNK_ELEMENTS // (K * K * D * D)))
        out = np.empty_like(y)
        for c in range(0, y.shape[0], step):
            part = slice(c, c + step)
            R, Q, w0 = self.lay.unpack(y[part])
            ph = phys if y.shape[0] <= step else phys.take(np.arange(y.shape[0])[part])
            d = _terms(R, Q, T[part], w0, ph, self.finite_v)
            out[part] = self.lay.pack(d["dR"], d["dQ_first"] + d["dQ_finite_v"], d["dw0"])
        return out

    def fun(self, t, y):
        if y.ndim == 1:
            self.nfev += 1
            return self.deriv(y.reshape(self.B, -1), self.T, self.phys).ravel()
        k = y.shape[1]  # columns: k states of the whole batch (numerical Jacobian)
        self.nfev += k
        T, phys = self._tile(k)
        flat = y.T.reshape(k * self.B, self.lay.size)
        return self.deriv(flat, T, phys).reshape(k, -1).T

    def margins(self, y):
        return _margins(y, self.T, self.lay)


def _solver(method, system: _BlockSystem, t0, y0, t_final, rtol, atol):
    cls = _SOLVERS[method]
    kwargs = {}
    size = system.lay.size
    if method in _IMPLICIT_SPARSE:
        block = np.ones((size, size))
        kwargs = {"jac_sparsity": block_diag([block] * system.B, format="csc"), "vectorized": True}
    elif method == "LSODA":
        kwargs = {"lband": size - 1, "uband": size - 1}
    return cls(system.fun, t0, y0, t_final, rtol=rtol, atol=atol, **kwargs)


def _adaptive_blocks(run: _Run, phys: Physics, finite_v, method, rtol, atol, budget):
    """As `ode._adaptive` (terminal event on the smallest margin of the batch, members that
    leave the valid domain are frozen and the others restart), with block-aware solvers.

    An implicit solver can stall on a member that runs into the singular edge of the domain
    (Newton fails, the step shrinks to ~1e-13): on a stall (STALL_STEPS steps shorter than
    STALL_H * max(alpha, 1e-3), or log max(alpha, 1e-3) advancing by less than STALL_PROGRESS
    in STALL_WINDOW steps) or a solver failure, the member with the largest right-hand
    side relative to the tolerance leaves the batch and is integrated alone with RK45 (same
    divergence handling), and the batch goes on without it.
    """
    t_final = run.alphas[-1]
    implicit = method in _IMPLICIT_SPARSE or method == "LSODA"
    while run.active.any() and run.next < len(run.alphas):
        idx = np.flatnonzero(run.active)
        system = _BlockSystem(run.T[idx], phys.take(idx), run.lay, finite_v)
        shape = (len(idx), run.lay.size)
        try:
            solver = _solver(method, system, run.t, run.state[idx].ravel(), t_final, rtol, atol)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError):
            run.stop(idx, run.t, stalled=True)
            break
        small_steps, times = 0, []
        while run.next < len(run.alphas):
            if run.nfev + system.nfev > budget:
                run.state[idx] = solver.y.reshape(shape)
                run.stop(idx, solver.t, stalled=True)
                break
            try:
                solver.step()
            except (ArithmeticError, ValueError, np.linalg.LinAlgError, RuntimeError):
                solver.status = "failed"
            if solver.status != "failed" and solver.t_old is not None:
                small_steps += solver.t - solver.t_old < STALL_H * max(abs(solver.t), 1e-3)
                times.append(max(abs(solver.t), 1e-3))
            crawling = len(times) > STALL_WINDOW and (
                math.log(times[-1] / times[-1 - STALL_WINDOW]) < STALL_PROGRESS
            )
            if implicit and (solver.status == "failed" or small_steps >= STALL_STEPS or crawling):
                run.nfev += system.nfev
                system.nfev = 0
                _split_off(run, idx, system, phys, finite_v, rtol, atol, budget)
                break
            if solver.status == "failed":
                run.stop(idx, solver.t, stalled=True)
                break
            interp = _reshaped(solver.dense_output(), shape)
            y_new = solver.y.reshape(shape)
            margins = system.margins(y_new)
            if np.all(margins > 0.0):
                run.record_until(idx, solver.t, y_new, interp)
                run.state[idx], run.t = y_new, solver.t
                continue
            try:
                t_exit = brentq(_edge(system, interp), solver.t_old, solver.t, xtol=1e-13)
            except ValueError:  # no clean sign change (NaN on the interpolant): the step end
                t_exit = solver.t
            y_exit = interp(t_exit)
            run.record_until(idx, t_exit, y_exit, interp)
            run.leave(idx, t_exit, y_exit, system.margins(y_exit))
            break
        run.nfev += system.nfev


def _split_off(run: _Run, idx, system: _BlockSystem, phys, finite_v, rtol, atol, budget):
    """Integrate the member of idx that stalls the batch alone with RK45, from run.t on."""
    y = run.state[idx]
    with np.errstate(all="ignore"):
        f = system.deriv(y, system.T, system.phys)
        score = np.nanmax(np.abs(f) / (atol + rtol * np.abs(y)), axis=1)
    score = np.where(np.isfinite(score), score, np.inf)
    m = idx[int(np.argmax(score))]
    alphas = np.concatenate([[run.t], run.alphas[run.next :]])
    sub = _Run(run.state[m : m + 1], run.T[m : m + 1], alphas, run.lay)
    _adaptive_blocks(sub, phys.take([m]), finite_v, "RK45", rtol, atol, max(budget - run.nfev, 0))
    run.records[m, run.next :] = sub.records[0, 1:]
    run.state[m] = sub.state[0]
    run.diverged[m], run.stalled[m] = sub.diverged[0], sub.stalled[0]
    run.alpha_div[m] = sub.alpha_div[0]
    run.active[m] = False
    run.nfev += sub.nfev
    run.split_off = getattr(run, "split_off", 0) + 1


def integrate_members(
    R0,
    Q0,
    T,
    w0,
    phys: Physics,
    alphas,
    settings: dict | None = None,
) -> dict:
    """Integrate a batch (axis 0) of members with (B,) parameters `phys` as one system.

    Same arguments and result as `tsmeta.theory.integrate` (R, Q, w0, eps_meta on `alphas`,
    diverged, alpha_diverged, stalled, nfev), plus split_off (members that stalled the
    implicit solver and were integrated alone); `settings` are theory settings
    (`max_rhs_evals` counts evaluations of the whole batch, a Jacobian column as one).
    """
    st = {**DEFAULT_SETTINGS, **(settings or {})}
    max_rhs_evals = int(st.get("max_rhs_evals") or DEFAULT_MAX_RHS_EVALS)
    method, fixed_step = st["method"], st["fixed_step"]
    if method not in _SOLVERS:
        raise ValueError(f"method must be one of {sorted(_SOLVERS)}, got {method!r}")
    R0, Q0, T, w0 = (np.asarray(x, dtype=float) for x in (R0, Q0, T, w0))
    B, K, M = R0.shape
    alphas = np.asarray(alphas, dtype=float)
    lay = _Layout(K, M)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        run = _Run(lay.pack(R0, Q0, w0), T, alphas, lay)
        if fixed_step is None:
            _adaptive_blocks(
                run,
                phys,
                bool(st["finite_v"]),
                method,
                float(st["rtol"]),
                float(st["atol"]),
                max_rhs_evals,
            )
        else:
            _fixed_rk4(run, phys, bool(st["finite_v"]), float(fixed_step), max_rhs_evals)
        A = len(alphas)
        R, Q, w = lay.unpack(run.records.reshape(B * A, lay.size))
        R, Q, w = R.reshape(B, A, K, M), Q.reshape(B, A, K, K), w.reshape(B, A, K)
        phys_ba = Physics(**{k: np.asarray(v)[:, None] for k, v in vars(phys).items()})
        eps = eps_meta_closed_form(R, Q, T[:, None], w, phys_ba)
    return {
        "R": R,
        "Q": Q,
        "w0": w,
        "eps_meta": eps,
        "diverged": run.diverged,
        "alpha_diverged": run.alpha_div,
        "stalled": run.stalled,
        "alpha": alphas,
        "nfev": run.nfev,
        "split_off": getattr(run, "split_off", 0),
    }


# --- thresholds ---------------------------------------------------------------------------


def first_crossing(alpha: np.ndarray, eps: np.ndarray, level: float) -> np.ndarray:
    """First alpha where eps (..., A) falls below level, log-log interpolated; NaN if never."""
    eps = np.asarray(eps, dtype=float)
    below = eps < level  # NaN compares False
    hit = below.any(axis=-1)
    i = np.argmax(below, axis=-1)
    out = np.full(eps.shape[:-1], np.nan)
    for pos in zip(*np.nonzero(hit)):
        j = int(i[pos])
        e = eps[pos]
        if j == 0:
            out[pos] = alpha[0]
            continue
        a0, a1, e0, e1 = alpha[j - 1], alpha[j], e[j - 1], e[j]
        if not (np.isfinite(e0) and e0 > 0 and e1 > 0):
            out[pos] = a1
            continue
        f = (math.log(e0) - math.log(level)) / (math.log(e0) - math.log(e1))
        if a0 > 0:
            out[pos] = math.exp(math.log(a0) + f * (math.log(a1) - math.log(a0)))
        else:
            out[pos] = a0 + f * (a1 - a0)
    return out


# --- the sweep ----------------------------------------------------------------------------


def _record_grid(alpha_final: float, n: int) -> np.ndarray:
    first = min(ALPHA_MIN, alpha_final / 10.0)
    return np.concatenate([[0.0], np.geomspace(first, alpha_final, n)])


def run_sweep(
    sweep: dict, settings: dict | None = None, *, n_fine: int = N_FINE, n_coarse: int = N_COARSE
) -> xr.Dataset:
    """Integrate every member of the sweep from its seed's initial overlaps (module doc).

    Returns a Dataset with one dim per grid axis (coords: the values) and
    eps_final (eps_meta at alpha_final), eps_min (smallest eps_meta on the fine records),
    alpha_to_level (..., level), eps_meta (..., alpha) on `n_coarse` log-spaced records,
    diverged (int8), alpha_diverged, stalled (int8), and the final R (..., k, n), Q (..., k, l),
    w0 (..., k) (NaN-padded to the largest K, M of the sweep); for `search_eta_J` the same
    variables prefixed `jsearch_`, with the dim `eta_J` in place of `eta_w`.
    Diverged members are marked, never raised; their final values are NaN.
    """
    unknown = sorted(set(settings or {}) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(
            f"unknown theory setting(s) {unknown}; allowed: {sorted(DEFAULT_SETTINGS)}"
        )
    st = {**DEFAULT_SETTINGS, **(settings or {})}
    base = dict(sweep.get("base") or {})
    levels = [float(v) for v in (sweep.get("levels") or [0.01, 0.001])]
    plan = searches(sweep)
    base_params = RunParams.from_dict(base)

    # members of every search, with their place in that search's output arrays
    members = []  # (search, flat index, params)
    shapes = {}
    for name, axes in plan.items():
        keys = list(axes)
        shapes[name] = tuple(len(axes[k]) for k in keys)
        for flat, values in enumerate(itertools.product(*(axes[k] for k in keys))):
            members.append((name, flat, member_params(base, dict(zip(keys, values)))))
    Kmax = max(p.K for _, _, p in members)
    Mmax = max(p.M for _, _, p in members)
    af_max = max(p.alpha_final for _, _, p in members)
    coarse = _record_grid(af_max, n_coarse)

    out = {}
    for name, shape in shapes.items():
        out[name] = {
            "eps_final": np.full(shape, np.nan),
            "eps_min": np.full(shape, np.nan),
            "alpha_to_level": np.full(shape + (len(levels),), np.nan),
            "eps_meta": np.full(shape + (len(coarse),), np.nan),
            "diverged": np.zeros(shape, dtype=np.int8),
            "alpha_diverged": np.full(shape, np.nan),
            "stalled": np.zeros(shape, dtype=np.int8),
            "R": np.full(shape + (Kmax, Mmax), np.nan),
            "Q": np.full(shape + (Kmax, Kmax), np.nan),
            "w0": np.full(shape + (Kmax,), np.nan),
        }

    states = {}
    groups: dict[tuple, list] = {}
    for m in members:
        p = m[2]
        groups.setdefault((p.K, p.M, p.alpha_final), []).append(m)
    start = time.perf_counter()
    group_log = []
    for (K, M, af), group in sorted(groups.items()):
        t0 = time.perf_counter()
        stack = []
        for _, _, p in group:
            key = tuple(getattr(p, k) for k in STATE_KEYS)
            if key not in states:
                ts = initial_state(p)
                states[key] = tuple(ts[v].values[0] for v in ("R0", "Q0", "T", "w0"))
            stack.append(states[key])
        R0, Q0, T, w0 = (np.stack([s[j] for s in stack]) for j in range(4))
        fine = _record_grid(af, n_fine)
        alphas = np.unique(np.concatenate([fine, coarse[coarse <= af], [af]]))
        res = integrate_members(
            R0, Q0, T, w0, Physics.from_params([p for *_, p in group]), alphas, st
        )
        eps = res["eps_meta"]
        cross = np.stack([first_crossing(alphas, eps, lv) for lv in levels], axis=-1)
        on_coarse = np.searchsorted(alphas, coarse[coarse <= af])
        with np.errstate(all="ignore"):
            eps_min = np.where(
                np.isnan(eps).all(axis=1),
                np.nan,
                np.nanmin(np.where(np.isnan(eps), np.inf, eps), axis=1),
            )
        for b, (name, flat, _) in enumerate(group):
            o = out[name]
            pos = np.unravel_index(flat, shapes[name])
            o["eps_final"][pos] = eps[b, -1]
            o["eps_min"][pos] = eps_min[b]
            o["alpha_to_level"][pos] = cross[b]
            o["eps_meta"][pos][: len(on_coarse)] = eps[b, on_coarse]
            o["diverged"][pos] = int(res["diverged"][b])
            o["alpha_diverged"][pos] = res["alpha_diverged"][b]
            o["stalled"][pos] = int(res["stalled"][b])
            o["R"][pos][:K, :M] = res["R"][b, -1]
            o["Q"][pos][:K, :K] = res["Q"][b, -1]
            o["w0"][pos][:K] = res["w0"][b, -1]
        group_log.append(
            {
                "K": K,
                "M": M,
                "alpha_final": af,
                "members": len(group),
                "rhs_evaluations": int(res["nfev"]),
                "split_off_members": int(res["split_off"]),
                "wall_time_s": round(time.perf_counter() - t0, 3),
            }
        )
    wall = time.perf_counter() - start
    return _dataset(
        plan, out, levels, coarse, Kmax, Mmax, sweep, st, base_params, wall, group_log, n_fine
    )


_VAR_ATTRS = {
    "eps_final": "eps_meta at alpha_final (NaN if diverged)",
    "eps_min": "smallest eps_meta on the fine records up to alpha_final",
    "alpha_to_level": "first alpha with eps_meta < level (NaN if never up to alpha_final)",
    "eps_meta": "meta-generalisation error, closed form in the order parameters",
    "diverged": "1 where the member left the valid domain",
    "alpha_diverged": "alpha at which the member was marked diverged (NaN if it did not)",
    "stalled": "1 where the solver failed or ran out of its evaluation budget",
    "R": "final student-teacher overlap R_kn (NaN-padded to the largest K, M)",
    "Q": "final student-student overlap Q_kl (NaN-padded to the largest K)",
    "w0": "final head initialisation w0 (NaN-padded to the largest K)",
}


def _dataset(
    plan, out, levels, coarse, Kmax, Mmax, sweep, st, base_params, wall, group_log, n_fine
) -> xr.Dataset:
    ds = xr.Dataset(
        coords={
            "level": levels,
            "alpha": coarse,
            "k": np.arange(Kmax),
            "l": np.arange(Kmax),
            "n": np.arange(Mmax),
        }
    )
    for name, axes in plan.items():
        dims = tuple(axes)
        prefix = _PREFIX[name]
        extra = {
            "alpha_to_level": ("level",),
            "eps_meta": ("alpha",),
            "R": ("k", "n"),
            "Q": ("k", "l"),
            "w0": ("k",),
        }
        for var, values in out[name].items():
            ds[prefix + var] = (dims + extra.get(var, ()), values)
            ds[prefix + var].attrs["long_name"] = _VAR_ATTRS[var]
        for axis, values in axes.items():
            if axis in ds.coords and list(ds[axis].values) != list(values):
                raise ValueError(f"axis {axis} differs between searches")  # cannot happen
            ds.coords[axis] = (axis,), np.asarray(values)
    ds["alpha"].attrs.update(long_name="time alpha = t / N", units="1")
    ds["level"].attrs["long_name"] = "eps_meta level of alpha_to_level"
    spec = {k: v for k, v in sweep.items() if k != "base"}
    ds.attrs.update(params_to_attrs(base_params))
    ds.attrs.update(
        stage="theory_sweep",
        theory="FO-ANIL order-parameter ODEs, N -> infinity, P -> infinity (docs/theory.md)",
        theory_algorithm="fo-anil",
        sweep_json=json.dumps(spec, sort_keys=True, default=str),
        base_json=json.dumps(base_params.to_dict(), sort_keys=True),
        settings_json=json.dumps(st, sort_keys=True),
        searches=",".join(plan),
        search_main=("grid " + ", ".join(plan["main"]) + "; other parameters from base"),
        search_eta_J=(
            "jsearch_* variables: grid axes without eta_w (eta_w = base eta_w) x eta_J"
            if "eta_J" in plan
            else "none"
        ),
        initial_state="tasks.initial_state of seed base.seed_offset, per member's (N, K, M, init)",
        alpha_to_level_method=(
            f"first crossing on {n_fine} log-spaced records from 0.01 to alpha_final, "
            "log eps linearly interpolated in log alpha"
        ),
        groups_json=json.dumps(group_log),
        members=int(sum(np.prod([len(v) for v in axes.values()]) for axes in plan.values())),
        wall_time_s=float(wall),
    )
    return ds


# --- analysis -----------------------------------------------------------------------------


def minimal_rate(ds: xr.Dataset, axis: str, level: float, prefix: str = "") -> xr.Dataset:
    """Smallest value of grid axis `axis` at which eps_meta falls below `level` by alpha_final.

    Along `axis` (for every value of the other grid axes): `upper` is the smallest grid value
    that passes (eps_meta < level on the fine records, i.e. eps_min < level), `lower` the grid
    value just below it (NaN if `upper` is the first grid value), and `rate` the threshold
    interpolated linearly in log(value) on log(eps_min) between them (upper if no lower).
    All three are NaN where no grid value passes. `prefix` selects the search ('jsearch_').
    """
    eps_min = ds[prefix + "eps_min"]
    other = [d for d in eps_min.dims if d != axis]
    em = eps_min.transpose(*other, axis)
    values = np.asarray(ds[axis].values, dtype=float)
    order = np.argsort(values)
    values, em_vals = values[order], em.values[..., order]
    shape = em_vals.shape[:-1]
    rate, lower, upper = (np.full(shape, np.nan) for _ in range(3))
    for pos in np.ndindex(shape):
        e = em_vals[pos]
        passed = np.flatnonzero(e < level)
        if not len(passed):
            continue
        j = int(passed[0])
        upper[pos] = values[j]
        rate[pos] = values[j]
        if j == 0:
            continue
        lower[pos] = values[j - 1]
        e0, e1 = e[j - 1], e[j]
        if np.isfinite(e0) and e0 > 0 and e1 > 0 and values[j - 1] > 0 and e0 != e1:
            f = (math.log(e0) - math.log(level)) / (math.log(e0) - math.log(e1))
            f = min(max(f, 0.0), 1.0)
            rate[pos] = math.exp(math.log(values[j - 1]) + f * math.log(values[j] / values[j - 1]))
    coords = {d: ds[d].values for d in other}
    out = xr.Dataset(
        {
            "rate": (tuple(other), rate),
            "lower": (tuple(other), lower),
            "upper": (tuple(other), upper),
        },
        coords=coords,
    )
    out.attrs.update(axis=axis, level=float(level))
    return out
