"""Behaviour-cloning models and SGD/Adam training loop in PyTorch."""

__version__ = "0.1.0"
