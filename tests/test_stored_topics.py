"""events/stored.py names the domain's topics and states as text, so the read side imports no
aggregate module: each must stay what the domain itself stores and means."""

from __future__ import annotations

import subprocess
import sys

from eventsourcing.utils import get_topic, resolve_topic

from events import stored
from projections.base import Projection, type_of_topic
from projections.notifications import RULES
from services.platform import all_projections


def test_every_read_model_topic_is_a_domain_event_class_stored_under_it() -> None:
    topics = {t for p in all_projections() for t in p.topics} | set(RULES)
    assert len(topics) > 40
    for topic in sorted(topics):
        cls = resolve_topic(topic)  # imports the aggregate's module: an unknown class raises here
        assert isinstance(cls, type) and get_topic(cls) == topic
        assert cls.__name__ == type_of_topic(topic)


def test_every_read_model_topic_comes_from_the_text_names() -> None:
    aggregates = {v for k, v in vars(stored).items() if k.isupper() and isinstance(v, str)}
    for p in all_projections():
        assert isinstance(p, Projection)
        for topic in p.topics:
            assert topic.rsplit(".", 1)[0] in aggregates, (p.name, topic)


def test_the_read_side_imports_no_aggregate_beyond_the_logs_own() -> None:
    """A rebuild's start-up: the read models name topics as text (events/stored.py)."""
    code = ("import sys, services.cli, services.platform; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('events.'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    heavy = {"events.campaigns", "events.duty_log", "events.logistics", "events.meetings", "events.rectifications",
             "events.warnings"}
    assert not heavy & set(out), out
