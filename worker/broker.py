"""kombu's Redis transport with one fix, so a worker survives Redis going away mid-task.

The bug (kombu 5.x): when Redis vanishes, the consumer's channel is usually waiting on a BRPOP.
`Channel.close()` first reads that BRPOP's reply; the read raises a connection error and the
close stops half way: the channel is not marked closed and its unacknowledged messages are not
handed back. Celery then detaches the transport from the connection (`Connection.collect()`)
and closes the connection again. That second close of the same channel needs the broker's
address to hand the messages back, finds the transport detached and raises
`AttributeError: 'NoneType' object has no attribute 'hostname'`. Nothing ignores an
AttributeError, so the worker logs "Unrecoverable error" and exits with the task still held.

The fix: when the BRPOP read fails, finish the close at once, while the transport is still
attached. The failed read has already cleared the pending poll, so the second attempt goes on
to hand the messages back (or fails with a connection error, which callers ignore as they
always did), and the channel ends closed, so later closes do nothing.
"""

from __future__ import annotations

from kombu.transport import redis


class Channel(redis.Channel):
    def close(self) -> None:
        try:
            super().close()
        except self.connection_errors:
            if self.closed:
                raise
            super().close()


class Transport(redis.Transport):
    Channel = Channel


# `broker_transport` for a redis:// or rediss:// broker URL (see worker.celery_app).
REDIS_TRANSPORT = f"{__name__}:Transport"
