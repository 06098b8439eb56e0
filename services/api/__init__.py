"""The HTTP adapter (FastAPI). Routers per resource; errors become problem+json in problems.py."""
