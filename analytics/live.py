"""Telling open analytics pages that their figures changed (the "new data" notice)."""

from ingestion.services import now_seq
from realtime.publish import publish_data_changed


def announce_refreshed() -> None:
    publish_data_changed(seq=now_seq())
