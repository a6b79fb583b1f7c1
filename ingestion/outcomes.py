"""How a load can end other than completed. The pipeline and the line writers raise these;
the task's runtime turns them into the upload's final state."""


class Cancelled(Exception):
    """The upload's owner cancelled it; nothing of its lines is kept."""


class PipelineError(Exception):
    """The upload fails; the message tells its owner what is wrong and where."""


class NeedsReview(Exception):
    """Under the `review` policy the file would change existing lines: nothing is written,
    and the upload waits for its owner's decisions (`Upload.review_summary` says what)."""


class NeedsMapping(Exception):
    """The columns need their owner's choice; nothing was written. The message says why."""
