"""Data structures shared by datasets, models and metrics."""
from __future__ import annotations

from .data_sample import DataSample

__all__ = ['DataSample']
