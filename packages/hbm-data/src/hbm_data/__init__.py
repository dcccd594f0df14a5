"""Human behaviour data: recorder episode files, validation, sessions, splits, simulated players."""

__version__ = "0.1.0"
