"""Signals other apps listen to, so that ingestion never imports them (analytics depends on
ingestion, never the other way).

`lines_changed` is sent once an upload's writes to the lines are committed: kind "loaded" (a
load, or a review's decisions, finished), "reverted" (an upload was undone). Receivers get
`upload` (the Upload) and `kind`; they must be quick or hand their work to a task, because
the sender is the load's own task."""

from django.dispatch import Signal

lines_changed = Signal()
