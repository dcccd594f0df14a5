"""Neuroevolution kernels in PyTorch: batched populations, GA, ES, CMA-ES, batched environments."""

__version__ = "0.1.0"
