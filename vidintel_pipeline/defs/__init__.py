"""The Dagster definitions: assets by group, jobs, partitions, sensors and the progress events runs emit."""
