"""The activations g in PyTorch, one module each, with the functions `g(z)` and `g_prime(z)`
(element-wise on tensors). `tsmeta.activations` says which module belongs to which
activation; the model and the samplers get it from there (`Activation.torch()`).
"""
