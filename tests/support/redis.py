"""Redis for tests: 127.0.0.1:6379 (``XVBD_TEST_REDIS``), each test under its own key prefix,
removed afterwards."""

from __future__ import annotations

import os
import uuid
from typing import Any

REDIS = os.environ.get("XVBD_TEST_REDIS", "127.0.0.1:6379")


def new_prefix() -> str:
    return f"xvbd-test-{uuid.uuid4().hex[:10]}:"


def connect() -> Any:
    import txredisapi

    host, _, port = REDIS.partition(":")
    return txredisapi.lazyConnectionPool(host, int(port or 6379), poolsize=2, connectTimeout=5)


async def drop_prefix(redis: Any, prefix: str) -> None:
    keys = await redis.keys(prefix + "*")
    if keys:
        await redis.delete(keys)
