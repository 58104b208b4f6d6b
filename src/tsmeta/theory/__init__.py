"""Order-parameter ODE theory of FO-ANIL (N -> infinity, P -> infinity); see docs/theory.md."""

from tsmeta.theory.closed_form import (
    Physics,
    adapted_head,
    eps_meta_closed_form,
    field_covariance,
    head_moments,
)
from tsmeta.theory.integrals import I2, I3, I4, J2
from tsmeta.theory.ode import integrate, integrate_batched, rhs_terms, theory_dataset

__all__ = [
    "I2",
    "I3",
    "I4",
    "J2",
    "Physics",
    "adapted_head",
    "eps_meta_closed_form",
    "field_covariance",
    "head_moments",
    "integrate",
    "integrate_batched",
    "rhs_terms",
    "theory_dataset",
]
