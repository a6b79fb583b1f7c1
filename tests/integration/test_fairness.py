"""Fairness: one user's unfinished uploads are capped, so nobody's flood of files fills the
queue for everyone (the queues by size are tested with real workers in test_faults.py)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ingestion import services
from ingestion.models import Upload
from tests.helpers import write_orders

pytestmark = pytest.mark.django_db


def test_a_user_at_the_cap_is_refused_the_next_file_with_the_reason(client, user, other_user, tmp_path, settings):
    settings.INGEST_MAX_ACTIVE_UPLOADS_PER_USER = 2
    path = write_orders(tmp_path / "orders.csv", 20)
    first = services.create_upload_from_path(owner=user, path=path, enqueue=False)
    services.create_upload_from_path(owner=user, path=path, enqueue=False)

    with pytest.raises(services.UploadRejected) as refused:
        services.create_upload_from_path(owner=user, path=path, enqueue=False)
    assert str(refused.value) == (
        "orders.csv: you already have 2 files queued or loading, the most one person may have at once (2); "
        "upload it again once some of them have finished."
    )

    client.force_login(user)
    response = client.post(
        reverse("upload-create"),
        {"files": [SimpleUploadedFile("more.csv", path.read_bytes(), content_type="text/csv")]},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "more.csv: you already have 2 files queued or loading, the most one person may have at once (2); "
        "upload it again once some of them have finished."
    }
    assert Upload.objects.filter(owner=user).count() == 2

    # Someone else is not held back by it, and a finished upload frees a place.
    assert services.create_upload_from_path(owner=other_user, path=path, enqueue=False).status == Upload.Status.QUEUED
    services.cancel_upload(upload=first, by=user)
    assert services.create_upload_from_path(owner=user, path=path, enqueue=False).status == Upload.Status.QUEUED
    assert Upload.objects.filter(owner=user, status__in=Upload.ACTIVE_STATUSES).count() == 2
