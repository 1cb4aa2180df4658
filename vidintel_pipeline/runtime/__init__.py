"""Where runs execute: the Dagster instance, the run launcher that routes by tag, CPU counts and the torch device."""
