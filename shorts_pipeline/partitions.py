"""One dynamic partition per project; the partition key is the project key."""

import dagster as dg

project_partitions = dg.DynamicPartitionsDefinition(name="project")
