"""Dagster resources: storage and plugins as ``ConfigurableResource``\\ s a user can set in the launchpad."""

from .costs import CostControls
from .plugins import GpuWorkResource, TemporalPluginsResource, TranscriptionResource
from .storage import VidintelStorage

__all__ = ["CostControls", "GpuWorkResource", "TemporalPluginsResource", "TranscriptionResource", "VidintelStorage"]
