"""Server-rendered pages (网页端) for liaisons, the lead bureau and auditors."""
