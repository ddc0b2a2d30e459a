"""channels-redis with a bounded connection pool that waits instead of failing.

redis-py's asyncio pool raises ``MaxConnectionsError`` once ``max_connections``
(100 by default) operations are in flight: 500 sockets opening at once
(each joins its run's group) made every one of them fail. This layer keeps the
same class name (the health check reports it) and gives each shard a
``BlockingConnectionPool``: at most ``max_connections`` connections per Daphne
or worker process, and an operation beyond them waits up to ``pool_timeout``
seconds for a free one.
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import (  # type: ignore[import-untyped]  # ships no types
    RedisChannelLayer as _RedisChannelLayer,
)
from redis.asyncio import BlockingConnectionPool


class RedisChannelLayer(_RedisChannelLayer):  # type: ignore[misc]
    def __init__(
        self, *args: Any, max_connections: int = 50, pool_timeout: float = 20.0, **kwargs: Any
    ) -> None:
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        super().__init__(*args, **kwargs)

    def create_pool(self, index: int) -> BlockingConnectionPool:
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        options = {"max_connections": self.max_connections, "timeout": self.pool_timeout, **host}
        if address is not None:
            return BlockingConnectionPool.from_url(address, **options)
        return BlockingConnectionPool(**options)
