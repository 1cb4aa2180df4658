"""vidintel: video intelligence pipeline on Dagster.

Public contracts live in :mod:`vidintel_pipeline.contracts`; the Dagster code location is
:mod:`vidintel_pipeline.definitions`.
"""

__version__ = "0.1.0"
