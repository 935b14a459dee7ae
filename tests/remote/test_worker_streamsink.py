"""The horse's writer to Redis (aiwgd.remote.streamsink): records stay in order and are
held while Redis is away, output past the bound is dropped with a note where it was cut,
and everything lands once Redis is back. A real redis-server, stopped and started."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aredis

from aiwgd.remote import keys
from aiwgd.remote.streamsink import StreamWriter, end_fields


def test_output_is_held_while_redis_is_away_and_bounded(redis: Any) -> None:
    queue, execution = "q-sink", "t-1"
    redis.stop()

    async def scenario() -> None:
        client = aredis.Redis(unix_socket_path=redis.socket, socket_timeout=2)
        writer = StreamWriter(client, queue, execution, max_buffer=10)
        writer.start()
        writer.output(b"aaaaaa")
        writer.output(b"bbbbbb")  # over the bound: dropped
        writer.output(b"ccc")  # fits again after a drop: comes after its note
        writer.entry("end", end_fields(0, None, None))
        # It tries (and fails) against the stopped server while this one starts.
        await asyncio.to_thread(redis.start)
        await asyncio.wait_for(writer.drain(), 15)
        await writer.close()
        await client.aclose()

    asyncio.run(scenario())
    entries = [f for _id, f in redis.client().xrange(keys.key(queue, "out", execution))]
    assert [e[b"k"] for e in entries] == [b"out", b"out", b"out", b"end"]
    assert entries[0][b"d"] == b"aaaaaa"
    assert (
        entries[1][b"d"] == b"[aiwg worker] 6 bytes of output were dropped while Redis was away\n"
    )
    assert entries[2][b"d"] == b"ccc"
    assert entries[3][b"code"] == b"0" and entries[3][b"reason"] == b""
