"""The activation table: what the simulation, the theory and the analysis need of g.

Torch- and SciPy-free (parsing a config imports nothing heavy). One line per activation in
`ACTIVATIONS`; adding one is a torch module with `g` and `g_prime` (`tsmeta.nonlinearities`),
a module of Gaussian integrals with the signatures of `tsmeta.theory.gaussian.erf` (I2, J2,
I3, I4, F4, F4_block), this line, its derivation in docs/theory.md and its tests
(docs/contributing.md). A run picks its line with the run parameter `activation`.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Activation:
    """One activation g and the facts about it that the code uses.

    torch_fns: "module" holding the torch functions `g(z)` and `g_prime(z)`, imported on use.
    integrals: "module" of the Gaussian integrals of g and g' the theory uses.
    formula: g and g' in words (the attribute convention_activation of every file).
    odd: g(-z) = -g(z), so a student unit and its negative are the same unit up to the sign
        of its head weight: relabelling may flip signs (docs/model.md, relabelling).
    second_moment: <g(z)^2>, z ~ N(0, 1).
    mean: <g(z)>, z ~ N(0, 1); where it is not zero, R = 0 is no fixed point.
    escape_factor: c of the linear escape rate c eta_J eta_w u_std^2 gamma^2 / (K M) from the
        unspecialised state R = 0 (docs/theory.md, sections 10 and 11); None where R = 0 is
        no fixed point (the escape rate then comes from the Jacobian at the symmetric plateau).
    docs: where its integrals and constants are derived.
    diffusion: whether its integrals give the diffusion matrix (theory.diffusion needs I6):
        the noise bands and the `sde` theory kind exist only for such activations.
    """

    name: str
    torch_fns: str
    integrals: str
    formula: str
    odd: bool
    second_moment: float
    mean: float
    escape_factor: float | None
    docs: str
    # its integrals include I6, which the diffusion matrix needs (noise bands, the SDE kind)
    diffusion: bool = False

    def torch(self):
        """The module with the torch `g` and `g_prime` (imports torch)."""
        return importlib.import_module(self.torch_fns)

    def gaussian(self):
        """The module of its Gaussian integrals (I2, J2, I3, I4, F4, F4_block)."""
        return importlib.import_module(self.integrals)

    def exact_head_rate(self, K: int, m: int) -> float | None:
        """The head rate eta_w at which one inner step is exact for a teacher unit carried by
        m of the K student units (Q = R = 1 on them): K / (m <g^2>), 3K / m for erf
        (docs/theory.md, section 11). None where <g> != 0: the head then also fits the mean
        and no single step is exact."""
        if self.mean != 0.0:
            return None
        return K / (m * self.second_moment)


ACTIVATIONS: dict[str, Activation] = {
    "erf": Activation(
        name="erf",
        torch_fns="tsmeta.nonlinearities.erf",
        integrals="tsmeta.theory.gaussian.erf",
        formula="g(z) = erf(z / sqrt(2)), g'(z) = sqrt(2/pi) exp(-z^2/2)",
        odd=True,
        second_moment=1.0 / 3.0,  # (2/pi) arcsin(1/2)
        mean=0.0,
        escape_factor=1.0 / math.pi**2,
        docs="docs/theory.md, sections 2, 10 and 11",
        diffusion=True,
    ),
    "relu": Activation(
        name="relu",
        torch_fns="tsmeta.nonlinearities.relu",
        integrals="tsmeta.theory.gaussian.relu",
        formula="g(z) = max(z, 0), g'(z) = 1 if z > 0 else 0",
        odd=False,
        second_moment=0.5,
        mean=1.0 / math.sqrt(2.0 * math.pi),
        escape_factor=None,  # R = 0 is no fixed point: the mean makes the head O(1)
        docs="docs/theory.md, section 13",
    ),
    "linear": Activation(
        name="linear",
        torch_fns="tsmeta.nonlinearities.linear",
        integrals="tsmeta.theory.gaussian.linear",
        formula="g(z) = z, g'(z) = 1",
        odd=True,
        second_moment=1.0,
        mean=0.0,
        escape_factor=1.0,
        docs="docs/theory.md, section 13",
    ),
}
ACTIVATION_NAMES = tuple(ACTIVATIONS)
DEFAULT_ACTIVATION = "erf"


def activation(name: str) -> Activation:
    """The table line of `name`; an unknown name is an error naming the allowed ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]
