"""Channel-layer group names. A page joins its user's group (the dashboard) or one upload's
group (the detail page); the publisher sends every event to both. Analytics pages join the
data group instead: it hears only that an upload completed (the loaded data is shared)."""

DATA_GROUP = "uploads.data"


def user_group(user_id) -> str:
    return f"uploads.user.{user_id}"


def upload_group(upload_id) -> str:
    return f"uploads.upload.{upload_id}"


def user_sockets_group(user_id) -> str:
    """Every socket of a user, the dashboard's and the detail pages': told when a session ends."""
    return f"sockets.user.{user_id}"
