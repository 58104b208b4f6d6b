"""The algorithm table: what each meta-learning algorithm is, for the simulator, the theory,
the sampler choice and the figures (docs/model.md, algorithms).

Torch-free. One line per algorithm in `ALGORITHM_TABLE`; code asks the table (`algorithm(name)
.second_order`, `.adapts_J`, `.theory`) instead of testing names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Algorithm:
    """One meta-learning algorithm.

    second_order: the outer gradient differentiates through the inner loop (ANIL, MAML).
    adapts_J: the inner loop moves the feature weights J too (MAML, FO-MAML): the update needs
        the individual inputs, not only their fields (samplers: `settings.SAMPLERS`).
    theory: the algorithm whose order-parameter ODE describes it at leading order in 1/N
        (docs/theory.md, section 9): ANIL's for ANIL and MAML, FO-ANIL's for FO-ANIL and
        FO-MAML.
    label, marker: how figures name and mark it.
    """

    name: str
    second_order: bool
    adapts_J: bool
    theory: str
    label: str
    marker: str


ALGORITHM_TABLE: dict[str, Algorithm] = {
    "fo-anil": Algorithm("fo-anil", False, False, "fo-anil", "FO-ANIL", "o"),
    "anil": Algorithm("anil", True, False, "anil", "ANIL", "s"),
    "maml": Algorithm("maml", True, True, "anil", "MAML", "D"),
    "fo-maml": Algorithm("fo-maml", False, True, "fo-anil", "FO-MAML", "^"),
}
ALGORITHMS = tuple(ALGORITHM_TABLE)


def algorithm(name: str) -> Algorithm:
    """The table line of `name`; an unknown name is an error naming the allowed ones."""
    if name not in ALGORITHM_TABLE:
        raise ValueError(f"algorithm must be one of {list(ALGORITHM_TABLE)}, got {name!r}")
    return ALGORITHM_TABLE[name]
