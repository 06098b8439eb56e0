"""Read models built from the event log.

Each projection is a pure event -> row policy plus its SQL tables. The runner commits the
rows and the tracking position in one transaction, so every event is applied exactly once
and any read model can be dropped and rebuilt.
"""
