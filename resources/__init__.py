"""Dagster resources: storage and plugins as ``ConfigurableResource``\\ s a user can set in the launchpad."""

from vidintel.resources.analysis import GpuWorkResource, TemporalPluginsResource, TranscriptionResource
from vidintel.resources.costs import CostControls
from vidintel.resources.storage import VidintelStorage

__all__ = ["CostControls", "GpuWorkResource", "TemporalPluginsResource", "TranscriptionResource", "VidintelStorage"]
