"""Gaussian integrals of the activations, one module each (`tsmeta.activations` says which
belongs to which activation; the theory gets it through `Physics.gaussian()`).

Every module has the functions of `erf` with its signatures: I2, J2, I3, I4 (closed forms
over a covariance array C (..., D, D)), F4 and F4_block (<g g g g>, the finite-P term).
"""
