"""What a user reads when the database refuses a load: a bounded sentence with the upload id,
never the database's own text; the details are in the worker's log."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from ingestion import services
from ingestion.messages import MAX_CHARS, user_message
from ingestion.models import Upload
from tests.helpers import wait_for_upload, write_orders

SECRET = "secret_table_name /srv/intake/private/path"


def test_user_message_is_bounded_and_names_no_server_path(settings, caplog):
    path = f"{settings.MEDIA_ROOT}/uploads/2026/12/02/orders.csv"
    assert user_message(upload_id="u1", text=f"Could not open {path}: bad zip") == "Could not open orders.csv: bad zip"
    long = user_message(upload_id="u1", text="x" * 5000)
    assert len(long) == MAX_CHARS and long.endswith("…")
    try:
        raise RuntimeError(SECRET)
    except RuntimeError as exc:
        message = user_message(upload_id="u2", text="The load stopped.", exc=exc)
    assert message == "The load stopped. The details are in the server log under upload u2."
    assert "Upload u2: The load stopped." in caplog.text and SECRET in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_database_error_reaches_the_user_without_its_text(user, live_worker, tmp_path):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE FUNCTION refuse_supplier() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION '{SECRET}'; END $$ "
                "LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_supplier BEFORE INSERT ON ingestion_supplier "
                "FOR EACH ROW EXECUTE FUNCTION refuse_supplier()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER refuse_supplier BEFORE INSERT ON ingestion_supplier "
                f"BEGIN SELECT RAISE(ABORT, '{SECRET}'); END"
            )
    try:
        upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "orders.csv", 50))
        upload = wait_for_upload(upload)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER refuse_supplier" + (" ON ingestion_supplier" if connection.vendor == "postgresql" else "")
            )
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION refuse_supplier()")
    assert upload.status == Upload.Status.FAILED
    assert upload.error_message == (
        f"The database refused the load; nothing was written. The details are in the server log under upload {upload.pk}."
    )


@pytest.mark.django_db(transaction=True)
def test_flower_sees_the_task_with_its_file_name(user, live_worker, tmp_path):
    """Flower builds its task list from the worker's events (the worker runs with -E): the
    task-received event carries argsrepr, the file's name beside the id."""
    from config.celery import app

    seen: dict[str, dict] = {}
    listening = threading.Event()

    def listen() -> None:
        with app.connection() as connection_:
            receiver = app.events.Receiver(
                connection_, handlers={"task-received": lambda e: seen.update({e["uuid"]: e})}
            )

            def stop_when_seen(event) -> None:  # an upload's task (not a price check after a load)
                receiver.should_stop = any(e.get("name") == "ingestion.tasks.process_upload" for e in seen.values())

            receiver.handlers["*"] = stop_when_seen
            listening.set()
            try:
                receiver.capture(limit=None, timeout=30)
            except TimeoutError:
                pass

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    listening.wait(5)
    time.sleep(0.5)  # the receiver's queue is bound before the task is sent
    upload = services.create_upload_from_path(owner=user, path=write_orders(tmp_path / "Lieferanten Q3.csv", 50))
    wait_for_upload(upload)
    thread.join(35)
    event = seen[upload.task_id]
    assert event["name"] == "ingestion.tasks.process_upload"
    assert event["args"] == f"('Lieferanten Q3.csv', '{upload.pk}')"
