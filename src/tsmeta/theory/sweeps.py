"""Theory-only sweeps: the order-parameter ODE over a grid of run parameters, batched.

Each member integrates the ODE of its own algorithm (`theory.second_order.theory_algorithm`:
ANIL's for anil and maml, FO-ANIL's for fo-anil and fo-maml), so `algorithm` can be a grid
axis (attribute `theory_algorithm` lists the ODEs used, `terms` their right-hand sides).

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
as drawn by `tsmeta.tasks.initial_state` for that member's (N, K, M, init, ...). Members with
the same (K, M, alpha_final, algorithm, activation), of both searches, form a group; a group
is integrated in systems of at most `batch` consecutive members (default SWEEP_BATCH; 0: the
whole group as one system; different initial states and parameters are batch entries). An
implicit solver steps a system at its stiffest member's pace, so small systems cost less per
member (docs/theory.md, section 8, "Theory sweeps").

Integration: `tsmeta.theory.integrator` (valid domain, divergence events, records), whose implicit
methods use the block-diagonal structure of the batch (block-sparse Jacobian for BDF and
Radau, band width for LSODA) and split off a member that stalls them (integrated alone with
RK45). At large rates the ODE is stiff near the fixed point, and an explicit batched step
follows the stiffest member: a 15 x 15 phase diagram took ~330-600 s with RK45 against
~10 s with BDF (rtol 1e-6; 2 shared cores). Use `method: BDF` (rtol 1e-6) for sweeps.

alpha_to_level: first crossing of eps_meta below each level on a fine log grid of
`N_FINE` records (0.01 .. alpha_final), refined by linear interpolation of log eps_meta in
log alpha between the two records around the crossing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from tsmeta.activations import DEFAULT_ACTIVATION
from tsmeta.analysis import first_crossing
from tsmeta.io import params_to_attrs
from tsmeta.params import (  # noqa: F401  (axis_values, searches: torch-free, config checks too)
    ALPHA_MIN,
    DEFAULT_LEVELS,
    RunParams,
    axis_values,
    log_alpha_grid,
    searches,
    sweep_points,
)
from tsmeta.progress import Progress
from tsmeta.settings import TheorySettings
from tsmeta.tasks import initial_state
from tsmeta.theory.closed_form import eps_meta_p_closed_form
from tsmeta.theory.dataset import log_early_stops
from tsmeta.theory.integrator import Trajectory, integrate
from tsmeta.theory.rhs import terms_for
from tsmeta.theory.second_order import theory_algorithm

N_FINE = 400  # records for the threshold crossings (log-spaced, 0.01 .. alpha_final)
N_COARSE = 60  # records of the eps_meta curves in the output (the `alpha` dim)
SWEEP_BATCH = 16  # members per integrated system (theory_sweep.batch; schema default)
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
_PREFIX = {"main": "", "eta_J": "jsearch_"}


# --- the grid -----------------------------------------------------------------------------


def member_params(base: dict, point: dict) -> RunParams:
    """RunParams of a member (one seed); its algorithm selects its ODE, as in make_theory."""
    params = RunParams.from_dict({**base, **point})
    return dataclasses.replace(params, seeds=1)


# --- the sweep ----------------------------------------------------------------------------


def _record_grid(alpha_final: float, n: int) -> np.ndarray:
    return log_alpha_grid(alpha_final, n, first=min(ALPHA_MIN, alpha_final / 10.0))


@dataclass(frozen=True)
class Member:
    """One member of a sweep: its search, its flat index in that search's arrays, its run."""

    search: str
    flat: int
    params: RunParams


def plan_members(base: dict, plan: dict) -> tuple[list[Member], dict]:
    """The members of the searches `plan` (`params.searches`): the cartesian product of each
    search's axes over the base; and each search's output shape."""
    shapes = {name: tuple(len(values) for values in axes.values()) for name, axes in plan.items()}
    members = [
        Member(name, flat, member_params(base, point)) for name, flat, point in sweep_points(plan)
    ]
    return members, shapes


def empty_outputs(shape: tuple, n_levels: int, n_coarse: int, Kmax: int, Mmax: int) -> dict:
    """A search's output arrays, NaN (int8 zeros for the flags) until its members are in."""
    return {
        "eps_final": np.full(shape, np.nan),
        "eps_p_final": np.full(shape, np.nan),
        "eps_min": np.full(shape, np.nan),
        "alpha_to_level": np.full(shape + (n_levels,), np.nan),
        "eps_meta": np.full(shape + (n_coarse,), np.nan),
        "diverged": np.zeros(shape, dtype=np.int8),
        "alpha_diverged": np.full(shape, np.nan),
        "stalled": np.zeros(shape, dtype=np.int8),
        "R": np.full(shape + (Kmax, Mmax), np.nan),
        "Q": np.full(shape + (Kmax, Kmax), np.nan),
        "w0": np.full(shape + (Kmax,), np.nan),
    }


def batch_groups(members: list[Member], batch: int = 0) -> list[tuple[tuple, list[Member]]]:
    """Members integrated as one system: a group has the same (K, M, alpha_final, algorithm,
    activation; one activation's integrals per system), groups sorted; each group cut into
    consecutive batches of at most `batch` members (0: the whole group)."""
    groups: dict[tuple, list] = {}
    for m in members:
        p = m.params
        groups.setdefault((p.K, p.M, p.alpha_final, p.algorithm, p.activation), []).append(m)
    out = []
    for key, group in sorted(groups.items()):
        size = batch or len(group)
        out += [(key, group[i : i + size]) for i in range(0, len(group), size)]
    return out


def initial_overlaps(group: list[Member], states: dict) -> tuple[np.ndarray, ...]:
    """R0, Q0, T, w0 of the group stacked, each member's from tasks.initial_state of its
    seed (drawn once per STATE_KEYS and kept in `states`)."""
    stack = []
    for m in group:
        key = tuple(getattr(m.params, k) for k in STATE_KEYS)
        if key not in states:
            ts = initial_state(m.params)
            states[key] = tuple(ts[v].values[0] for v in ("R0", "Q0", "T", "w0"))
        stack.append(states[key])
    return tuple(np.stack([s[j] for s in stack]) for j in range(4))


@dataclass(frozen=True)
class GroupResult:
    """What a group's integration gives the outputs: per member (axis 0) the trajectory
    `res` on `alphas`, eps_p at the end, the first crossings `cross` (..., level), eps_min,
    and the positions of the coarse records in `alphas`."""

    res: Trajectory
    alphas: np.ndarray
    eps_p: np.ndarray
    cross: np.ndarray
    eps_min: np.ndarray
    on_coarse: np.ndarray


def integrate_group(group, overlaps, af, coarse, levels, st, n_fine, progress) -> GroupResult:
    """Integrate a group as one batch on the fine records (and the coarse ones up to af), and
    derive its thresholds: first crossings of the levels, eps_min, the final eps_p."""
    R0, Q0, T, w0 = overlaps
    fine = _record_grid(af, n_fine)
    alphas = np.unique(np.concatenate([fine, coarse[coarse <= af], [af]]))
    plist = [m.params for m in group]
    res = integrate(R0, Q0, T, w0, plist, alphas, st, progress=progress)
    eps = res.eps_meta
    eps_p = eps_meta_p_closed_form(res.R[:, -1], res.Q[:, -1], T, res.w0[:, -1], plist)
    cross = np.stack([first_crossing(eps, alphas, lv) for lv in levels], axis=-1)
    on_coarse = np.searchsorted(alphas, coarse[coarse <= af])
    with np.errstate(all="ignore"):
        eps_min = np.where(
            np.isnan(eps).all(axis=1),
            np.nan,
            np.nanmin(np.where(np.isnan(eps), np.inf, eps), axis=1),
        )
    return GroupResult(res, alphas, eps_p, cross, eps_min, on_coarse)


def collect_group(out: dict, shapes: dict, group: list[Member], g: GroupResult) -> None:
    """Write each member's results into its search's arrays at its place."""
    res, eps = g.res, g.res.eps_meta
    K, M = res.R.shape[-2:]
    for b, m in enumerate(group):
        o = out[m.search]
        pos = np.unravel_index(m.flat, shapes[m.search])
        o["eps_final"][pos] = eps[b, -1]
        o["eps_p_final"][pos] = g.eps_p[b]
        o["eps_min"][pos] = g.eps_min[b]
        o["alpha_to_level"][pos] = g.cross[b]
        o["eps_meta"][pos][: len(g.on_coarse)] = eps[b, g.on_coarse]
        o["diverged"][pos] = int(res.diverged[b])
        o["alpha_diverged"][pos] = res.alpha_diverged[b]
        o["stalled"][pos] = int(res.stalled[b])
        o["R"][pos][:K, :M] = res.R[b, -1]
        o["Q"][pos][:K, :K] = res.Q[b, -1]
        o["w0"][pos][:K] = res.w0[b, -1]


def run_sweep(
    sweep: dict,
    settings: TheorySettings | dict | None = None,
    *,
    n_fine: int = N_FINE,
    n_coarse: int = N_COARSE,
    label: str = "theory sweep",
) -> xr.Dataset:
    """Integrate every member of the sweep from its seed's initial overlaps (module doc).

    Returns a Dataset with one dim per grid axis (coords: the values) and
    eps_final (eps_meta at alpha_final), eps_p_final (the few-shot error eps_meta_p at
    alpha_final, NaN for inner_steps >= 2), eps_min (smallest eps_meta on the fine records),
    alpha_to_level (..., level), eps_meta (..., alpha) on `n_coarse` log-spaced records,
    diverged (int8), alpha_diverged, stalled (int8), and the final R (..., k, n), Q (..., k, l),
    w0 (..., k) (NaN-padded to the largest K, M of the sweep); for `search_eta_J` the same
    variables prefixed `jsearch_`, with the dim `eta_J` in place of `eta_w`.
    Diverged members are marked, never raised; their final values are NaN.
    """
    st = TheorySettings.coerce(settings)
    base = dict(sweep.get("base") or {})
    levels = [float(v) for v in (sweep.get("levels") or DEFAULT_LEVELS)]
    plan = searches(sweep)
    base_params = RunParams.from_dict(base)
    members, shapes = plan_members(base, plan)
    Kmax = max(m.params.K for m in members)
    Mmax = max(m.params.M for m in members)
    coarse = _record_grid(max(m.params.alpha_final for m in members), n_coarse)
    out = {
        name: empty_outputs(shape, len(levels), len(coarse), Kmax, Mmax)
        for name, shape in shapes.items()
    }
    start = time.perf_counter()
    groups = batch_groups(members, int(sweep.get("batch", SWEEP_BATCH)))
    states, group_log = {}, []
    bar = Progress(len(members), label, unit="members")  # progress on the terminal and log
    for gi, ((K, M, af, algorithm, act_name), group) in enumerate(groups):
        t0 = time.perf_counter()
        shown = algorithm if act_name == DEFAULT_ACTIVATION else f"{algorithm}, {act_name}"
        where = f"batch {gi + 1}/{len(groups)} (K={K}, M={M}, {shown}, {len(group)} members)"
        heartbeat = functools.partial(_heartbeat, bar, where)
        overlaps = initial_overlaps(group, states)
        g = integrate_group(group, overlaps, af, coarse, levels, st, n_fine, heartbeat)
        names = [", ".join(f"{k}={getattr(m.params, k)!r}" for k in plan[m.search]) for m in group]
        log_early_stops(f"{label}, {where}", names, g.res)
        bar.update(bar.done + len(group), group=where)
        collect_group(out, shapes, group, g)
        group_log.append(_group_entry((K, M, af, algorithm, act_name), len(group), g.res, t0))
    bar.close(groups=len(groups))
    attrs = sweep_attrs(sweep, st, base_params, plan, members, n_fine)
    attrs.update(groups_json=json.dumps(group_log), wall_time_s=time.perf_counter() - start)
    coords = {
        "level": levels,
        "alpha": coarse,
        "k": np.arange(Kmax),
        "l": np.arange(Kmax),
        "n": np.arange(Mmax),
    }
    return _dataset(plan, out, coords, attrs)


def _group_entry(key: tuple, members: int, res: Trajectory, t0: float) -> dict:
    """A group's line in the attribute groups_json: what it was and what it cost."""
    K, M, af, algorithm, act_name = key
    entry = {"K": K, "M": M, "alpha_final": af, "algorithm": algorithm}
    if act_name != DEFAULT_ACTIVATION:  # files of erf sweeps keep their form
        entry["activation"] = act_name
    return entry | {
        "members": members,
        "rhs_evaluations": int(res.nfev),
        "split_off_members": int(res.split_off),
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }


def sweep_attrs(sweep: dict, st, base_params: RunParams, plan: dict, members, n_fine) -> dict:
    """The sweep's attributes: its spec, base, settings, theories, searches and methods."""
    spec = {k: v for k, v in sweep.items() if k != "base"}
    theories = list(dict.fromkeys(theory_algorithm(m.params.algorithm) for m in members))
    return {
        **params_to_attrs(base_params),
        "stage": "theory_sweep",
        "theory": " and ".join(t.upper() for t in theories)
        + " order-parameter ODEs, N -> infinity (docs/theory.md)",
        "theory_algorithm": ",".join(theories),
        "terms": "; ".join(f"{t}: {','.join(terms_for(st, t))}" for t in theories),
        "sweep_json": json.dumps(spec, sort_keys=True, default=str),
        "base_json": json.dumps(base_params.to_dict(), sort_keys=True),
        "settings_json": json.dumps(st.to_dict(), sort_keys=True),
        "searches": ",".join(plan),
        "search_main": "grid " + ", ".join(plan["main"]) + "; other parameters from base",
        "search_eta_J": (
            "jsearch_* variables: grid axes without eta_w (eta_w = base eta_w) x eta_J"
            if "eta_J" in plan
            else "none"
        ),
        "initial_state": (
            "tasks.initial_state of seed base.seed_offset, per member's (N, K, M, init)"
        ),
        "alpha_to_level_method": (
            f"first crossing on {n_fine} log-spaced records from 0.01 to alpha_final, "
            "log eps linearly interpolated in log alpha"
        ),
        "members": len(members),
    }


def _heartbeat(bar: Progress, where: str, alpha: float, evaluations: int, seconds: float):
    """A long group's progress: the alpha it has reached."""
    bar.update(bar.done, group=where, alpha=alpha)


_VAR_ATTRS = {
    "eps_final": "eps_meta at alpha_final (NaN if diverged)",
    "eps_p_final": "few-shot error eps_meta_p (head adapted on P examples) at alpha_final",
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


def _dataset(plan: dict, out: dict, coords: dict, attrs: dict) -> xr.Dataset:
    """The sweep's Dataset: one dim per grid axis, search `eta_J` under the prefix jsearch_."""
    ds = xr.Dataset(coords=coords)
    extra = {
        "alpha_to_level": ("level",),
        "eps_meta": ("alpha",),
        "R": ("k", "n"),
        "Q": ("k", "l"),
        "w0": ("k",),
    }
    for name, axes in plan.items():
        dims = tuple(axes)
        prefix = _PREFIX[name]
        for var, values in out[name].items():
            ds[prefix + var] = (dims + extra.get(var, ()), values)
            ds[prefix + var].attrs["long_name"] = _VAR_ATTRS[var]
        for axis, values in axes.items():
            ds.coords[axis] = (axis,), np.asarray(values)
    ds["alpha"].attrs.update(long_name="time alpha = t / N", units="1")
    ds["level"].attrs["long_name"] = "eps_meta level of alpha_to_level"
    ds.attrs.update(attrs)
    return ds
