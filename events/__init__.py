"""Write model: aggregates and their domain events, one module per context.

Pure Python: stdlib and the eventsourcing domain layer only. Domain code never reads the
clock or the environment; callers pass ``now``.
"""
