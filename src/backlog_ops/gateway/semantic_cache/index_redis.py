"""The other team option: cache entries in Redis, for a gateway whose Redis has no vector search.

Redis here is plain (no RediSearch module), so vectors are not searched inside Redis: one hash
per bucket (`PREFIX:v:BUCKET`, entry id → expiry + vector) is read whole and scanned exactly with
numpy, which a bucket's bound (`max_entries_per_scope`, 1000 × 64 floats ≈ 270 kB at most) keeps
cheap. Each response is its own key (`PREFIX:e:ID`) with Redis's own expiry, so an entry past its
TTL is gone even if its vector lingers a while in the bucket hash; writes prune expired and
oldest vectors.
"""

from __future__ import annotations

import struct
import time

from backlog_ops.common.extras import require

__all__ = ["RedisIndex"]

PREFIX = "backlog:semantic"
_EXPIRY = struct.Struct("<d")


class RedisIndex:
    kind = "redis"

    def __init__(self, url: str, *, prefix: str = PREFIX, connect_timeout: float = 2.0) -> None:
        redis = require("redis", "redis", "The semantic cache in Redis")
        self._db = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout)
        self._prefix = prefix.rstrip(":")

    def _bucket(self, bucket: str) -> str:
        return f"{self._prefix}:v:{bucket}"

    def lookup(self, bucket: str, vector, threshold: float, now: float | None = None) -> tuple[float, str] | None:
        import numpy as np

        now = time.time() if now is None else now
        ids, vectors = [], []
        for entry_id, blob in self._db.hgetall(self._bucket(bucket)).items():
            if _EXPIRY.unpack_from(blob)[0] > now:
                ids.append(entry_id)
                vectors.append(np.frombuffer(blob, dtype=np.float32, offset=_EXPIRY.size))
        if not ids:
            return None
        similarities = np.vstack(vectors) @ vector
        best = int(np.argmax(similarities))
        if float(similarities[best]) < threshold:
            return None
        value = self._db.get(f"{self._prefix}:e:{ids[best].decode()}")
        return None if value is None else (float(similarities[best]), value.decode())

    def store(self, bucket: str, project: str, vector, value: str, ttl_seconds: float, max_entries: int,
              now: float | None = None) -> None:
        now = time.time() if now is None else now
        key = self._bucket(bucket)
        entry_id = str(self._db.incr(f"{self._prefix}:next-id"))
        ttl = max(1, int(round(ttl_seconds)))
        pipe = self._db.pipeline(transaction=True)
        pipe.set(f"{self._prefix}:e:{entry_id}", value, ex=ttl)
        pipe.hset(key, entry_id, _EXPIRY.pack(now + ttl_seconds) + vector.astype("float32").tobytes())
        pipe.expire(key, ttl)  # the newest entry's TTL: an idle bucket goes away with its entries
        pipe.execute()
        if self._db.hlen(key) > max_entries:
            self._prune(key, max_entries, now)

    def _prune(self, key: str, max_entries: int, now: float) -> None:
        entries = sorted(self._db.hgetall(key).items(), key=lambda kv: int(kv[0]))
        live = [k for k, blob in entries if _EXPIRY.unpack_from(blob)[0] > now]
        drop = [k for k, blob in entries if _EXPIRY.unpack_from(blob)[0] <= now] + live[: max(0, len(live) - max_entries)]
        if drop:
            self._db.hdel(key, *drop)
            self._db.delete(*(f"{self._prefix}:e:{k.decode()}" for k in drop))

    def count(self) -> int:
        return sum(self._db.hlen(k) for k in self._db.scan_iter(match=f"{self._prefix}:v:*", count=1000))

    def close(self) -> None:
        self._db.close()
