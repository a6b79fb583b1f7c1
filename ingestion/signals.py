"""Signals other apps listen to, so that ingestion never imports them (analytics depends on
ingestion, never the other way).

`lines_changed` is sent once an upload's writes to the lines are committed: kind "loaded" (a
load, or a review's decisions, finished), "reverted" (an upload was undone). Receivers get
`upload` (the Upload) and `kind`; they must be quick or hand their work to a task, because
the sender is the load's own task. A load's "loaded" is sent by the runner before the
upload's row says completed, with `quality` (ingestion.quality.QualityCounter: what the
load counted for its quality score), so that what a receiver stores at once (the score) is
on the final card."""

from django.dispatch import Signal

lines_changed = Signal()
