"""Order-parameter ODE theory (N -> infinity); see docs/theory.md.

gaussian (Gaussian averages and F4, one module per activation) -> closed_form (adapted
head, moments over u, eps_meta, the head noise at finite P and the few-shot error eps_meta_p)
-> rhs (the physics: named terms of d(R, Q, w0)/d(alpha); their modules second_order,
finite_p) -> integrator (batched integration: the one loop that drives the steppers of
`steppers` over the bookkeeping of `trajectory`: state layout, valid domain, records and
stops, work budget) -> dataset (the theory stage) and sweeps (theory-only grids).
"""

from tsmeta.theory.closed_form import (
    Physics,
    adapted_head,
    eps_meta_closed_form,
    eps_meta_p_closed_form,
    field_covariance,
    head_moments,
)
from tsmeta.theory.dataset import theory_dataset
from tsmeta.theory.integrator import Trajectory, integrate
from tsmeta.theory.rhs import TERMS, diffusion, drift, term_drifts, terms_for

__all__ = [
    "TERMS",
    "Physics",
    "Trajectory",
    "adapted_head",
    "diffusion",
    "drift",
    "eps_meta_closed_form",
    "eps_meta_p_closed_form",
    "field_covariance",
    "head_moments",
    "integrate",
    "term_drifts",
    "terms_for",
    "theory_dataset",
]
