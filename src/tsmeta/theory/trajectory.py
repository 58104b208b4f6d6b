"""Trajectory bookkeeping of a batched theory integration, apart from how it is stepped.

What every stepper of `theory.steppers` shares, and `steppers.drive` runs once for all:

- `StateLayout`: the flat state (R, Q, w0) of one member, `pack` and `unpack`;
- `domain_margins`: the valid domain (finite, |entry| <= BOUND, the (J, B) Gram matrix PSD);
- `Records`: the records on the requested alphas, the members still running, and why and
  where the others stopped (`stop`, with one of the reasons below or the work bound's);
- `WorkBudget`: right-hand-side evaluations and wall time of one integration (`spend` raises
  `OutOfWork` past `max_rhs_evals` or `max_wall_s`), and the progress callback;
- `Trajectory`: the integrated batch as `integrate` returns it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

BOUND = 1e6  # a state entry beyond this is divergence
PSD_TOL = 1e-6  # relative tolerance on the smallest eigenvalue of the (J, B) Gram matrix
PROGRESS_EVERY_S = 10.0  # seconds between calls of integrate's `progress`

# why a member stopped early (Trajectory.reason); the work bound's reason names the bound
LEFT_DOMAIN = "left the valid domain (non-finite, |entry| > 1e6 or overlaps not PSD)"
NON_FINITE_DRIFT = "right-hand side not finite at a valid state (a rate or an input not finite?)"
SOLVER_FAILED = "the ODE solver failed (step size too small)"


class OutOfWork(Exception):
    """The bound on the work of one integration is spent (the message says which)."""


class WorkBudget:
    """Right-hand-side evaluations and wall time of one `integrate` call, split-off members
    included; `spend` raises OutOfWork once either bound is passed."""

    def __init__(self, max_evals: int, max_wall_s: float | None, progress=None):
        self.max_evals, self.max_wall_s = max_evals, max_wall_s
        self.start = time.monotonic()
        self.evals = 0
        self.progress = progress
        self.next_report = self.start + PROGRESS_EVERY_S

    def spend(self, n: int) -> None:
        self.evals += n
        if self.evals > self.max_evals:
            raise OutOfWork(
                f"ran out of its work bound, max_rhs_evals = {self.max_evals} right-hand sides"
            )
        if self.max_wall_s is not None and time.monotonic() - self.start > self.max_wall_s:
            raise OutOfWork(f"ran out of its work bound, max_wall_s = {self.max_wall_s:g} s")

    def report(self, alpha: float) -> None:
        """Call `progress(alpha, evaluations, seconds)` at most every PROGRESS_EVERY_S."""
        now = time.monotonic()
        if self.progress is not None and now >= self.next_report:
            self.next_report = now + PROGRESS_EVERY_S
            self.progress(float(alpha), self.evals, now - self.start)


class StateLayout:
    """Flat state (R, Q, w0) of one member: K*M + K*K + K numbers, members along axis 0."""

    def __init__(self, K: int, M: int):
        self.K, self.M = K, M
        self.nR, self.nQ = K * M, K * K
        self.size = self.nR + self.nQ + K

    def pack(self, R, Q, w0) -> np.ndarray:
        """(B, K, M), (B, K, K), (B, K) -> (B, size)."""
        b = R.shape[0]
        return np.concatenate([R.reshape(b, -1), Q.reshape(b, -1), w0.reshape(b, -1)], axis=1)

    def unpack(self, y):
        """(B, size) -> R (B, K, M), Q (B, K, K), w0 (B, K) (views of y)."""
        b = y.shape[0]
        R = y[:, : self.nR].reshape(b, self.K, self.M)
        Q = y[:, self.nR : self.nR + self.nQ].reshape(b, self.K, self.K)
        return R, Q, y[:, self.nR + self.nQ :]


def domain_margins(y, T, layout: StateLayout) -> np.ndarray:
    """Per member: > 0 inside the valid domain, <= 0 outside (non-finite state or T: -1).

    The margin is the smaller of the relative smallest eigenvalue of the (J, B) Gram matrix
    (plus PSD_TOL) and 1 - max |entry| / BOUND; it is continuous in the state, so a root
    finder can locate where a member leaves.
    """
    finite = np.all(np.isfinite(y), axis=1) & np.all(np.isfinite(T), axis=(1, 2))
    y = np.where(finite[:, None], y, 0.0)
    T = np.where(finite[:, None, None], T, np.eye(T.shape[-1]))  # eigvalsh fails on NaN
    R, Q, _ = layout.unpack(y)
    gram = np.concatenate(
        [np.concatenate([Q, R], axis=2), np.concatenate([np.swapaxes(R, 1, 2), T], axis=2)],
        axis=1,
    )
    gram = 0.5 * (gram + np.swapaxes(gram, 1, 2))
    scale = np.maximum(1.0, np.abs(gram).max(axis=(1, 2)))
    psd = np.linalg.eigvalsh(gram)[:, 0] / scale + PSD_TOL
    size = 1.0 - np.abs(y).max(axis=1) / BOUND
    return np.where(finite, np.minimum(psd, size), -1.0)


class Records:
    """Records, stops and the current state of a whole batch.

    `records` (B, A, size) holds the state at `alphas` (NaN after a member stopped); `state`
    and `t` are where the running members (`active`) are; a stopped member keeps `diverged`,
    `stalled` (stopped by the solver or the work bound), `alpha_div` and `reason`. Members
    outside the domain at alphas[0] stop there. `next` is the index of the next record.
    """

    def __init__(self, y0, T, alphas, layout: StateLayout):
        B, A = y0.shape[0], len(alphas)
        self.alphas, self.T, self.layout = alphas, T, layout
        self.records = np.full((B, A, layout.size), np.nan)
        self.diverged = np.zeros(B, dtype=bool)
        self.stalled = np.zeros(B, dtype=bool)
        self.alpha_div = np.full(B, np.nan)
        self.reason = np.full(B, "", dtype=object)
        self.state = y0.copy()
        self.t = alphas[0]
        self.next = 1
        self.nfev = 0
        self.split_off = 0  # members that stalled the batch's stepper, integrated alone
        bad = domain_margins(y0, T, layout) <= 0.0
        self.active = ~bad
        self.records[self.active, 0] = y0[self.active]
        self.stop(np.flatnonzero(bad), alphas[0])

    def stop(self, members, t, stalled=False, reason=LEFT_DOMAIN):
        """Freeze members at alpha t: marked diverged, no later records."""
        self.diverged[members] = True
        self.stalled[members] |= stalled
        self.alpha_div[members] = t
        self.reason[members] = reason
        self.active[members] = False

    def record_until(self, idx, t_end, y_end, interp):
        """Records of members idx at the requested alphas up to t_end (interp: alpha -> y;
        never called for a record at t_end itself, which gets y_end)."""
        while self.next < len(self.alphas) and self.alphas[self.next] <= t_end:
            a = self.alphas[self.next]
            self.records[idx, self.next] = y_end if a == t_end else interp(a)
            self.next += 1

    def leave(self, idx, t_new, y_new, margins):
        """Members of idx whose margin is used up at t_new stop there; the others go on."""
        left = margins <= 1e-9
        if not left.any():  # a root found right at the tolerance
            left = margins <= margins.min()
        self.state[idx] = y_new
        self.stop(idx[left], t_new)
        self.t = t_new

    def take_over(self, member: int, alone: Records) -> None:
        """The later records and the stop of `member`, integrated alone from `t` on in the
        one-member `alone` (whose alphas are [t] + the records still to come)."""
        self.records[member, self.next :] = alone.records[0, 1:]
        self.state[member] = alone.state[0]
        self.diverged[member], self.stalled[member] = alone.diverged[0], alone.stalled[0]
        self.alpha_div[member], self.reason[member] = alone.alpha_div[0], alone.reason[0]
        self.active[member] = False
        self.nfev += alone.nfev
        self.split_off += 1


@dataclass(frozen=True)
class Trajectory:
    """An integrated batch on the records `alpha`: R (B, A, K, M), Q (B, A, K, K),
    w0 (B, A, K), eps_meta (B, A); diverged (B,), alpha_diverged (B,) (NaN if not), stalled
    (B,) (diverged because the solver failed or ran out of its evaluation budget); nfev
    (right-hand sides of the whole batch, a Jacobian column as one), split_off (members that
    stalled a solver and were integrated alone), terms (the right-hand side), reason (why
    each member stopped early, "" where it reached the last record)."""

    R: np.ndarray
    Q: np.ndarray
    w0: np.ndarray
    eps_meta: np.ndarray
    diverged: np.ndarray
    alpha_diverged: np.ndarray
    stalled: np.ndarray
    alpha: np.ndarray
    nfev: int
    split_off: int
    terms: tuple[str, ...]
    reason: np.ndarray | None = None  # (B,) why a member stopped early ("" if it did not)
