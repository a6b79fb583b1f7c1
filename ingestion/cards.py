"""The upload card: the one fragment every page, HTTP answer and socket message shows of an
upload. The dashboard, the detail page, the views, the publisher and the consumer all render
it here, so there is one template and one way to fill it (no request context: the socket has
none, and the page's script reads the CSRF token from the page itself)."""

from __future__ import annotations

from collections.abc import Iterable

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from .models import Upload

CARD_TEMPLATE = "ingestion/card.html"


# mark_safe: template output is already escaped, and joining escaped pieces keeps it so.
def render_card(upload: Upload) -> SafeString:
    return mark_safe(render_to_string(CARD_TEMPLATE, {"upload": upload}).strip())


def render_cards(uploads: Iterable[Upload]) -> SafeString:
    """Cards in the order given (newest first: the page inserts the ones it lacks in that order)."""
    return mark_safe("\n".join(render_card(upload) for upload in uploads))
