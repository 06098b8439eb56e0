"""Evidence uploads (佐证材料): sniffing and cleaning, content-addressed storage, use cases, jobs."""
