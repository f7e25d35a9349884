"""Live updates without a thread per viewer: the board's event streams on waitress.

``GET /api/events`` answers its first event through Flask like any request
(:func:`tracequest.classroom.app.create_app`), and then its connection is
handed to an event hub (:class:`EventHub`) instead of ending: waitress's
worker thread goes back to the pool, and the hub's one thread writes each
``update`` event (at most one a second, carrying the store's version) and a
heartbeat comment every 15 s to every open stream. A stream ends when its
client goes, after 30 minutes (the browser reconnects by itself), when its
client stops reading, and when the board stops. At most ``Limits.max_streams``
are open at once.

The hand-over needs waitress's own channel and task to be replaced
(:class:`BoardChannel`, which :func:`tracequest.classroom.server.start_board`
installs), so it lives here, apart from the app's endpoints. Served by
anything but :func:`~tracequest.classroom.server.start_board`, the app still
answers /api/events, with one event per connection: the browser reconnects
every few seconds, which is polling.
"""

from __future__ import annotations

import logging
import threading
import time

from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.task import WSGITask

from tracequest.classroom.store import BoardStore

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
EVENT_INTERVAL_S = 1.0
STREAM_MAX_AGE_S = 30 * 60
#: A stream whose client has not read this much is ended (it is not reading).
STREAM_MAX_BACKLOG = 64 * 1024
STOP_GRACE_S = 2.0
EVENTS_ENVIRON_KEY = "tracequest.classroom.events"


def update_event(version: int) -> bytes:
    """The ``update`` event for the store's ``version``, as it goes on a stream."""
    return b'event: update\ndata: {"version": %d}\n\n' % version


class _Streaming:
    """Stands in the channel's request queue while it streams: waitress then reads no further
    request from that connection, and sends only under the channel's lock, as while a request runs."""

    def close(self) -> None:
        pass


_STREAMING = _Streaming()


class _BoardTask(WSGITask):
    def finish(self):
        hub, version = (self.environ or {}).get(EVENTS_ENVIRON_KEY, (None, 0))
        if (hub is not None and isinstance(self.channel, BoardChannel) and self.chunked_response
                and self.status.startswith("200") and self.channel.connected and hub.adopt(self.channel, version)):
            self.close_on_finish = False   # the stream goes on: no last chunk, no close
            return
        super().finish()


class BoardChannel(HTTPChannel):
    """waitress's channel, able to stream: once the hub adopts it, it reads no more requests."""

    task_class = _BoardTask
    stream_hub: EventHub | None = None

    def service(self):
        if self.requests and self.requests[0] is _STREAMING:
            return
        super().service()

    def readable(self):
        if self.stream_hub is not None:   # to notice the client leave
            return not (self.will_close or self.close_when_flushed)
        return super().readable()

    def handle_read(self):
        if self.stream_hub is None:
            return super().handle_read()
        try:
            data = self.recv(self.adj.recv_bytes)   # b"" and closed when the client has gone
        except OSError:
            self.handle_close()
            return
        if data:   # an event stream's client has nothing to send
            self.will_close = True

    def del_channel(self, map=None):
        super().del_channel(map)
        if self.stream_hub is not None:
            self.stream_hub.drop(self)


class EventHub:
    """The open event streams, and the one thread that writes to them."""

    def __init__(self, store: BoardStore, max_streams: int):
        self._store = store
        self.max_streams = max_streams
        self._streams: dict[BoardChannel, list] = {}   # channel -> [opened at, version it has]
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self) -> int:
        with self._lock:
            return len(self._streams)

    def has_room(self) -> bool:
        return self.count() < self.max_streams and not self._stopping.is_set()

    def notify(self) -> None:
        """The store changed: every stream gets an update event (at most one per EVENT_INTERVAL_S)."""
        self._changed.set()

    def adopt(self, channel: BoardChannel, version: int) -> bool:
        """Take over a channel whose response has begun with the event for ``version``."""
        with self._lock:
            if self._stopping.is_set() or len(self._streams) >= self.max_streams:
                return False
            with channel.requests_lock:
                channel.requests.append(_STREAMING)
            channel.stream_hub = self
            self._streams[channel] = [time.monotonic(), version]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="class-board-events", daemon=True)
                self._thread.start()
        if version != self._store.version:   # it changed since that first event
            self._changed.set()
        return True

    def drop(self, channel: BoardChannel) -> None:
        with self._lock:
            self._streams.pop(channel, None)

    def stop(self) -> None:
        """End every stream cleanly (the last chunk, then close) and stop the thread."""
        self._stopping.set()
        self._changed.set()
        with self._lock:
            channels = list(self._streams)
            thread = self._thread
        for channel in channels:
            self._end(channel, clean=True)
        if thread is not None:
            thread.join(timeout=STOP_GRACE_S)

    def _run(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_S
        while True:
            self._changed.wait(timeout=max(0.0, next_beat - time.monotonic()))
            if self._stopping.is_set():
                return
            self._changed.clear()
            version = self._store.version
            with self._lock:
                behind = [channel for channel, (_, has) in self._streams.items() if has != version]
                for channel in behind:
                    self._streams[channel][1] = version
            self._send(behind, update_event(version))
            if time.monotonic() >= next_beat:
                with self._lock:
                    everyone = list(self._streams)
                self._send(everyone, b": heartbeat\n\n")
                next_beat = time.monotonic() + HEARTBEAT_S
            self._end_old_streams()
            if behind:
                self._stopping.wait(EVENT_INTERVAL_S)   # one event carries a burst of records

    def _send(self, channels: list[BoardChannel], data: bytes) -> None:
        chunk = b"%X\r\n%s\r\n" % (len(data), data)
        for channel in channels:
            if channel.total_outbufs_len > STREAM_MAX_BACKLOG:
                self._end(channel, clean=False)
                continue
            try:
                channel.write_soon(chunk)
            except ClientDisconnected:
                self.drop(channel)
            except Exception:   # one broken stream must not stop the others'
                log.exception("writing to an event stream failed")
                self._end(channel, clean=False)

    def _end_old_streams(self) -> None:
        cutoff = time.monotonic() - STREAM_MAX_AGE_S
        with self._lock:
            old = [channel for channel, (opened, _) in self._streams.items() if opened < cutoff]
        for channel in old:
            self._end(channel, clean=True)

    def _end(self, channel: BoardChannel, clean: bool) -> None:
        self.drop(channel)
        if clean:
            try:
                channel.write_soon(b"0\r\n\r\n")
            except ClientDisconnected:
                return
            channel.close_when_flushed = True
        else:
            channel.will_close = True
        channel.server.pull_trigger()
