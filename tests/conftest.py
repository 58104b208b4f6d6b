import torch

torch.set_num_threads(1)  # the tests' timings and tolerances assume one thread per process
