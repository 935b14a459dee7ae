"""The remote tests' own fixtures: a real redis-server keeps acknowledged writes over a
restart (the Redis-restart tests depend on it) and refuses a client without its password."""

from __future__ import annotations

import pytest

from tests.remote.conftest import RedisServer


def test_redis_restart_keeps_acknowledged_writes(redis: RedisServer) -> None:
    with redis.client() as c:
        c.set("k", "v")
        c.xadd("s", {"k": "out", "d": b"x"})
    old = redis.pid
    redis.restart()
    assert redis.pid != old
    with redis.client() as c:
        assert c.get("k") == b"v"
        assert c.xlen("s") == 1
    assert redis.url == f"unix://{redis.socket}"


def test_redis_with_password_refuses_a_client_without_it(redis_with_password: RedisServer) -> None:
    import redis as redis_py
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    anon = redis_py.Redis(
        unix_socket_path=redis_with_password.socket, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(redis_py.AuthenticationError):
        anon.ping()
    with redis_with_password.client() as c:
        assert c.ping()


def test_redis_stop(redis: RedisServer) -> None:
    import redis as redis_py

    redis.stop()
    with pytest.raises(redis_py.ConnectionError), redis.client(timeout=1) as c:
        c.ping()


def test_missing_redis_server_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tests.remote import conftest

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt install redis-server"):
        conftest.need_redis_server()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="redis-server not installed"):
        conftest.need_redis_server()
