"""The publisher's own rules, without Redis: coalescing, the final resend, never raising,
and a working loop after a fork (the Celery prefork worker). A recording layer stands in
for the channel layer because the publisher sends from its own loop thread, which an
InMemoryChannelLayer's loop-bound queues cannot be read across."""

from __future__ import annotations

import os
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from realtime import publish
from realtime.groups import DATA_GROUP, upload_group, user_group

FINAL = {"completed", "failed", "cancelled"}


class RecordingLayer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    async def group_send(self, group: str, message: dict) -> None:
        with self._lock:
            self.sent.append((group, message))

    def to(self, group: str) -> list[dict]:
        with self._lock:
            return [m for g, m in self.sent if g == group]


def wait_until(condition, timeout: float = 10) -> None:
    """A guard against hangs, not a speed check."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        time.sleep(0.01)


def fake_upload(**fields) -> SimpleNamespace:
    values = dict(pk=uuid.uuid4(), owner_id=7, status="processing", processed_rows=0, seq=1)
    values.update(fields)
    upload = SimpleNamespace(**values)
    upload.is_finished = upload.status in FINAL
    return upload


def step(upload, **fields) -> None:
    for name, value in fields.items():
        setattr(upload, name, value)
    upload.seq += 1
    upload.is_finished = upload.status in FINAL


@pytest.fixture
def layer(monkeypatch) -> RecordingLayer:
    recording = RecordingLayer()
    monkeypatch.setattr(publish, "get_channel_layer", lambda: recording)
    monkeypatch.setattr(
        publish,
        "render_card",
        lambda u: (
            f'<article data-seq="{u.seq}" data-status="{u.status}" data-processed="{u.processed_rows}"></article>'
        ),
    )
    return recording


def test_message_goes_to_the_owner_and_the_upload_groups(layer):
    upload = fake_upload(status="completed")
    publish.publish_upload(upload)
    for group in (user_group(7), upload_group(upload.pk)):
        wait_until(lambda group=group: layer.to(group))
        message = layer.to(group)[0]
        assert message["type"] == "upload.card"
        assert message["upload_id"] == str(upload.pk) and message["seq"] == upload.seq
        assert message["status"] == "completed" and 'data-status="completed"' in message["html"]


def test_a_burst_of_progress_is_coalesced_and_the_latest_state_still_goes_out(layer):
    upload = fake_upload()
    group = upload_group(upload.pk)
    for done in range(1, 201):
        step(upload, processed_rows=done)
        publish.publish_upload(upload)
    wait_until(lambda: any(m["html"].endswith('data-processed="200"></article>') for m in layer.to(group)))
    sent = layer.to(group)
    assert len(sent) < 50
    seqs = [m["seq"] for m in sent]
    assert seqs == sorted(seqs) and seqs[-1] == upload.seq


def test_a_final_state_replaces_pending_progress_and_is_sent_again(layer, settings):
    settings.REALTIME_MIN_INTERVAL = 60  # the second progress event is surely held back
    upload = fake_upload()
    group = upload_group(upload.pk)
    step(upload, processed_rows=1)
    publish.publish_upload(upload)  # goes out at once
    step(upload, processed_rows=2)
    publish.publish_upload(upload)  # held back by the interval
    step(upload, processed_rows=3, status="completed")
    publish.publish_upload(upload)  # final: waits until sent
    wait_until(lambda: len(layer.to(group)) >= 3)
    statuses = [m["status"] for m in layer.to(group)]
    assert statuses == ["processing", "completed", "completed"]  # the held-back progress never goes out
    assert 'data-processed="2"' not in "".join(m["html"] for m in layer.to(group))


def test_publishing_never_raises_logs_each_failure_and_keeps_working(monkeypatch, layer, caplog):
    caplog.set_level("WARNING", logger="realtime.publish")
    render = publish.render_card

    class Broken:
        async def group_send(self, group, message):
            raise ConnectionError("Redis is away")

    monkeypatch.setattr(publish, "get_channel_layer", lambda: Broken())
    progress, failed = fake_upload(), fake_upload(status="failed")
    assert publish.publish_upload(progress) is None
    assert publish.publish_upload(failed) is None  # final: returns once its send was tried
    for upload in (progress, failed):
        for group in (user_group(7), upload_group(upload.pk)):
            wait_until(lambda u=upload, g=group: f"Could not send upload {u.pk} to {g}" in caplog.text)

    def boom(upload):
        raise RuntimeError("template missing")

    monkeypatch.setattr(publish, "render_card", boom)
    unrenderable = fake_upload(status="completed")
    assert publish.publish_upload(unrenderable) is None
    assert f"Could not publish upload {unrenderable.pk}" in caplog.text
    assert "RuntimeError: template missing" in caplog.text

    # The publisher survived all of it: with the layer back, the next state goes out.
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)
    monkeypatch.setattr(publish, "render_card", render)
    after = fake_upload(status="completed")
    publish.publish_upload(after)
    wait_until(lambda: layer.to(upload_group(after.pk)))
    assert [m["status"] for m in layer.to(upload_group(after.pk))][:1] == ["completed"]
    assert not layer.to(upload_group(unrenderable.pk))


def test_publishing_with_redis_down_returns(settings, monkeypatch, caplog):
    """The real channels-redis layer pointed at a port nobody listens on."""
    caplog.set_level("WARNING", logger="realtime.publish")
    monkeypatch.setattr(publish, "render_card", lambda u: "<article></article>")
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    publish.publish_upload(fake_upload())
    publish.publish_upload(fake_upload(status="completed"))
    assert "Could not send upload" in caplog.text  # the final one was tried, failed, and logged


def test_a_forked_child_publishes_on_its_own_loop(layer):
    publish.publish_upload(fake_upload(status="completed"))  # the parent's loop is running
    wait_until(lambda: layer.sent)
    parent_loop = publish._publisher._loop
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread does not exist here
        ok = False
        try:
            layer.sent.clear()
            publish.publish_upload(fake_upload(status="completed"))
            # The card to its two groups, and "new data" to the analytics pages.
            ok = publish._publisher._loop is not parent_loop and len(layer.sent) == 3
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"


def test_only_a_completed_upload_tells_analytics_pages_of_new_data(layer):
    failed = fake_upload(status="failed")
    publish.publish_upload(failed)
    wait_until(lambda: layer.to(upload_group(failed.pk)))
    completed = fake_upload(status="completed")
    publish.publish_upload(completed)
    wait_until(lambda: layer.to(DATA_GROUP))
    news = layer.to(DATA_GROUP)
    assert [m["type"] for m in news] == ["data.changed"]
    assert news[0]["html"] == f'<div id="data-changed" data-changed="{completed.seq}"></div>'
