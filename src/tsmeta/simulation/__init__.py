"""Simulation stage: finite-N online meta-learning, batched over seeds, in PyTorch.

streams (per-seed random streams) -> samplers (one task: draws -> outer update; the state)
-> observables (order parameters, Monte-Carlo eps_meta) -> run (the driver and the Dataset).
"""

from tsmeta.simulation.run import Simulation, resolve_device, simulate

__all__ = ["Simulation", "resolve_device", "simulate"]
