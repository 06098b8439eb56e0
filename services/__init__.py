"""Application services and the adapters that face the world."""
