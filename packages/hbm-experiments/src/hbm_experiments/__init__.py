"""Cached, reproducible hbm experiments with exca: configs, sweeps, Slurm arrays, reports."""

__version__ = "0.1.0"
