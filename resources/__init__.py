"""Dagster resources: storage and plugins as ``ConfigurableResource``\\ s a user can set in the launchpad."""

from .plugins import TemporalPluginsResource, TranscriptionResource
from .storage import VidintelStorage

__all__ = ["TemporalPluginsResource", "TranscriptionResource", "VidintelStorage"]
