"""The websocket consumer on the real channels-redis layer, through the real ASGI stack
(session auth and the Origin check included)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from ingestion import services
from ingestion.models import Upload
from realtime.publish import publish_upload

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"http://localhost"


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


_opened: list[WebsocketCommunicator] = []


async def connect(user=None, *, path="/ws/uploads/", origin=ORIGIN):
    headers = [(b"host", b"localhost"), (b"origin", origin)]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    _opened.append(communicator)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


@pytest.fixture(autouse=True)
async def _close_sockets():
    """Every socket a test opened is closed inside the test's own event loop, as a browser
    leaving the page would. A refused socket's consumer otherwise still waits on the
    channel layer when pytest-asyncio closes the loop, and cancelling it there hung the
    whole run (seen twice in about twenty runs)."""
    yield
    while _opened:
        communicator = _opened.pop()
        try:
            await communicator.disconnect(timeout=2)
        except Exception:  # noqa: BLE001 - already closed, or the test broke it on purpose
            pass


def make_upload(owner, *, status=Upload.Status.PROCESSING, name="orders.csv", **fields) -> Upload:
    return Upload.objects.create(
        owner=owner,
        original_name=name,
        file=f"uploads/{name}",
        size=10,
        status=status,
        seq=services.now_seq(),
        **fields,
    )


async def receive_text(communicator, timeout=5) -> str:
    return await communicator.receive_from(timeout=timeout)


async def test_anonymous_is_refused_with_4401():
    communicator, connected, _ = await connect(None)
    assert connected
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_foreign_origin_is_refused(user):
    communicator, connected, _ = await connect(user, origin=b"http://evil.example")
    assert not connected


async def test_snapshot_on_connect_has_the_users_unfinished_uploads_only(user, other_user):
    mine = await database_sync_to_async(make_upload)(user, processed_rows=3000, total_rows=9000)
    await database_sync_to_async(make_upload)(user, status=Upload.Status.COMPLETED, name="old.csv")
    theirs = await database_sync_to_async(make_upload)(other_user)
    communicator, connected, _ = await connect(user)
    assert connected
    snapshot = await receive_text(communicator)
    assert f'id="upload-{mine.pk}"' in snapshot
    assert 'data-processed="3000"' in snapshot and 'data-total="9000"' in snapshot
    assert str(theirs.pk) not in snapshot
    assert "old.csv" not in snapshot  # finished long ago (no finished_at): not in the snapshot
    await communicator.disconnect()


async def test_events_published_from_sync_code_arrive_in_order(user):
    upload = await database_sync_to_async(make_upload)(user, total_rows=5000)
    communicator, _, _ = await connect(user)
    await receive_text(communicator)  # snapshot

    def work_like_the_task():
        for done in range(1000, 6000, 1000):
            upload.processed_rows = done
            upload.seq = services.now_seq()
            publish_upload(upload)
            threading.Event().wait(0.15)  # slower than the coalescing interval: each goes out
        upload.status = Upload.Status.COMPLETED
        upload.seq = services.now_seq()
        publish_upload(upload)

    await asyncio.get_running_loop().run_in_executor(None, work_like_the_task)
    seen = []
    while True:
        fragment = await receive_text(communicator)
        seen.append(fragment)
        if 'data-status="completed"' in fragment:
            break
    processed = [int(f.split('data-processed="')[1].split('"')[0]) for f in seen]
    seqs = [int(f.split('data-seq="')[1].split('"')[0]) for f in seen]
    assert processed == sorted(processed) and processed[-1] == 5000
    assert seqs == sorted(seqs)
    assert len(seen) >= 5
    # The final state is sent again a second later, in case a message was dropped.
    again = await receive_text(communicator, timeout=5)
    assert 'data-status="completed"' in again
    await communicator.disconnect()


async def test_progress_is_coalesced_but_the_latest_state_arrives(user):
    upload = await database_sync_to_async(make_upload)(user, total_rows=100)
    communicator, _, _ = await connect(user)
    await receive_text(communicator)

    def burst():
        for done in range(1, 101):
            upload.processed_rows = done
            upload.seq = services.now_seq()
            publish_upload(upload)

    await asyncio.get_running_loop().run_in_executor(None, burst)
    seen = []
    while not seen or 'data-processed="100"' not in seen[-1]:
        seen.append(await receive_text(communicator))
    assert len(seen) < 20  # a hundred events in a burst, a few fragments
    await communicator.disconnect()


async def test_cancel_own_queued_upload(user):
    upload = await database_sync_to_async(make_upload)(user, status=Upload.Status.QUEUED)
    communicator, _, _ = await connect(user)
    await receive_text(communicator)
    await communicator.send_to(
        text_data=json.dumps({"action": "cancel", "upload_id": str(upload.pk), "HEADERS": {"HX-Request": "true"}})
    )
    reply = await receive_text(communicator)
    assert f'id="upload-{upload.pk}"' in reply and 'data-status="cancelled"' in reply
    await database_sync_to_async(upload.refresh_from_db)()
    assert upload.status == Upload.Status.CANCELLED
    await communicator.disconnect()


async def test_cancel_own_running_upload_answers_cancelling(user):
    upload = await database_sync_to_async(make_upload)(user, status=Upload.Status.PROCESSING)
    communicator, _, _ = await connect(user)
    await receive_text(communicator)
    await communicator.send_to(text_data=json.dumps({"action": "cancel", "upload_id": str(upload.pk)}))
    reply = await receive_text(communicator)
    assert 'data-status="cancelling"' in reply
    await communicator.disconnect()


async def test_cancel_of_another_users_upload_is_refused_and_changes_nothing(user, other_user):
    theirs = await database_sync_to_async(make_upload)(other_user, status=Upload.Status.PROCESSING)
    communicator, _, _ = await connect(user)
    await receive_text(communicator)
    await communicator.send_to(text_data=json.dumps({"action": "cancel", "upload_id": str(theirs.pk)}))
    reply = await receive_text(communicator)
    assert 'id="ws-error"' in reply and str(theirs.pk) not in reply
    await database_sync_to_async(theirs.refresh_from_db)()
    assert theirs.status == Upload.Status.PROCESSING
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"action": "explode"}), "Unknown action"),
        (json.dumps({"action": "cancel"}), "does not exist"),
        (json.dumps({"action": "cancel", "upload_id": "nope"}), "does not exist"),
        (json.dumps({"action": "sync", "upload_ids": "x"}), "list of ids"),
    ],
)
async def test_bad_messages_get_an_error_and_the_socket_stays_open(user, payload, expected):
    upload = await database_sync_to_async(make_upload)(user)
    communicator, _, _ = await connect(user)
    await receive_text(communicator)
    await communicator.send_to(text_data=payload)
    reply = await receive_text(communicator)
    assert 'id="ws-error"' in reply and expected in reply
    # Still open and answering (sync sends a card that changed since the snapshot).
    await database_sync_to_async(Upload.objects.filter(pk=upload.pk).update)(seq=services.now_seq())
    await communicator.send_to(text_data=json.dumps({"action": "sync", "upload_ids": [str(upload.pk)]}))
    assert f'id="upload-{upload.pk}"' in await receive_text(communicator)
    await communicator.disconnect()


async def test_sync_returns_only_own_uploads(user, other_user):
    mine = await database_sync_to_async(make_upload)(user, status=Upload.Status.COMPLETED)
    theirs = await database_sync_to_async(make_upload)(other_user)
    communicator, _, _ = await connect(user)
    await receive_text(communicator)
    await communicator.send_to(
        text_data=json.dumps({"action": "sync", "upload_ids": [str(mine.pk), str(theirs.pk), "junk"]})
    )
    reply = await receive_text(communicator)
    assert str(mine.pk) in reply and str(theirs.pk) not in reply
    await communicator.disconnect()


async def test_detail_socket_follows_one_upload_and_refuses_foreign_ones(user, other_user):
    mine = await database_sync_to_async(make_upload)(user)
    theirs = await database_sync_to_async(make_upload)(other_user)
    communicator, connected, _ = await connect(user, path=f"/ws/uploads/?upload={theirs.pk}")
    assert connected
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}

    communicator, connected, _ = await connect(user, path=f"/ws/uploads/?upload={mine.pk}")
    assert str(mine.pk) in await receive_text(communicator)
    mine.status = Upload.Status.COMPLETED
    mine.seq = services.now_seq()
    await asyncio.get_running_loop().run_in_executor(None, publish_upload, mine)
    assert 'data-status="completed"' in await receive_text(communicator)
    await communicator.disconnect()


async def test_a_real_tasks_events_arrive_in_order_until_the_end(user, live_worker, tmp_path):
    from tests.helpers import write_orders

    communicator, _, _ = await connect(user)
    await receive_text(communicator)  # snapshot
    path = write_orders(tmp_path / "live.csv", 20_000)
    upload = await database_sync_to_async(services.create_upload_from_path)(owner=user, path=path)
    seen = []
    while True:
        fragment = await receive_text(communicator, timeout=60)
        if f'id="upload-{upload.pk}"' not in fragment:
            continue
        seen.append(fragment)
        if 'data-status="completed"' in fragment:
            break
    seqs = [int(f.split('data-seq="')[1].split('"')[0]) for f in seen]
    processed = [int(f.split('data-processed="')[1].split('"')[0]) for f in seen]
    assert seqs == sorted(seqs)
    assert processed == sorted(processed) and processed[-1] == 20_000
    assert any('data-status="processing"' in f for f in seen)
    assert len(seen) >= 3  # queued or processing, progress, completed
    await communicator.disconnect()


# --- limits: sockets per user, the snapshot's size, sync's cost, sign-out ---------------------


async def test_sockets_per_user_are_capped_and_a_closed_one_frees_its_place(user, other_user, settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 2
    first, _, _ = await connect(user)
    await receive_text(first)
    second, _, _ = await connect(user)
    await receive_text(second)
    third, connected, _ = await connect(user)
    assert connected
    assert "You have 2 live pages open, the most allowed" in await receive_text(third)
    assert await third.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": 4429,
        "reason": "You have 2 live pages open, the most allowed; close some tabs and reload.",
    }
    theirs, _, _ = await connect(other_user)  # another user's count is their own
    assert 'id="ws-snapshot"' in await receive_text(theirs)
    await first.disconnect()
    fourth, _, _ = await connect(user)
    assert 'id="ws-snapshot"' in await receive_text(fourth)


async def test_snapshot_is_capped_and_says_how_many_more(user, settings):
    settings.REALTIME_SNAPSHOT_MAX = 5
    uploads = [
        await database_sync_to_async(make_upload)(user, status=Upload.Status.QUEUED, name=f"f{i}.csv") for i in range(8)
    ]
    communicator, _, _ = await connect(user)
    snapshot = await receive_text(communicator)
    assert snapshot.count('class="upload-card') == 5
    newest = sorted(uploads, key=lambda u: u.created_at, reverse=True)
    assert all(f'id="upload-{u.pk}"' in snapshot for u in newest[:5])
    assert '<div id="ws-more" data-more="3">and 3 more unfinished uploads</div>' in snapshot


async def test_sync_sends_only_changed_cards_and_at_most_the_cap(user, settings):
    settings.REALTIME_SYNC_MAX = 3
    uploads = [await database_sync_to_async(make_upload)(user, name=f"s{i}.csv") for i in range(5)]
    communicator, _, _ = await connect(user)
    await receive_text(communicator)  # all five, in the snapshot
    ids = [str(u.pk) for u in uploads]
    await communicator.send_to(text_data=json.dumps({"action": "sync", "upload_ids": ids}))
    assert await communicator.receive_nothing(timeout=0.5)  # nothing changed: nothing sent
    for upload in uploads:
        await database_sync_to_async(Upload.objects.filter(pk=upload.pk).update)(seq=services.now_seq())
    await communicator.send_to(text_data=json.dumps({"action": "sync", "upload_ids": ids}))
    reply = await receive_text(communicator)
    assert [u for u in ids if f'id="upload-{u}"' in reply] == ids[:3]


async def test_signing_out_closes_that_sessions_sockets(user):
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", ORIGIN), (b"cookie", cookie)]
    dashboard = WebsocketCommunicator(application, "/ws/uploads/", headers=headers)
    _opened.append(dashboard)
    assert (await dashboard.connect(timeout=5))[0]
    await receive_text(dashboard)
    other_browser, _, _ = await connect(user)  # the same user, signed in elsewhere
    await receive_text(other_browser)

    response = await database_sync_to_async(client.post)("/accounts/logout/")
    assert response.status_code == 302
    assert await dashboard.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await other_browser.receive_nothing(timeout=0.5)  # still signed in there


async def test_signing_out_closes_that_sessions_analytics_socket(user):
    client = Client()
    await database_sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"host", b"localhost"), (b"origin", ORIGIN), (b"cookie", cookie)]
    analytics = WebsocketCommunicator(application, "/ws/uploads/?watch=data", headers=headers)
    _opened.append(analytics)
    assert (await analytics.connect(timeout=5))[0]
    other_browser, connected, _ = await connect(user, path="/ws/uploads/?watch=data")
    assert connected

    response = await database_sync_to_async(client.post)("/accounts/logout/")
    assert response.status_code == 302
    assert await analytics.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await other_browser.receive_nothing(timeout=0.5)  # still signed in there
