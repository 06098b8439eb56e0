"""What the outside relies on: catalogue data from the seeds, event JSON Schemas, API models."""
