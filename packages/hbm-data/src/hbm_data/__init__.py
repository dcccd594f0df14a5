"""Human behaviour data layer: recorder episode files, validation, sessions, splits, simulated subjects."""

__version__ = "0.1.0"
