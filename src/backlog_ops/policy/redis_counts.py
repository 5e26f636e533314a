"""Per-ticket reservations shared by every proxy process and replica, in the team's Redis.

Per ticket, four keys under `<prefix>budget:{<project>/<ticket>}` (one hash tag: one slot):

    :s  hash  the ledger's figures (cost, esc, at = when read, Redis time) and the running sums
              of the two hashes below (fcost, fesc, dcost, desc)
    :f  hash  call_id -> "estimate escalation expires_ms": calls in flight
    :d  hash  call_id -> "cost escalation expires_ms": calls finished, their row maybe not in the ledger yet
    :l  string  the token of the one process reading the ledger for this ticket now

A check is one Lua script: used = ledger + finished + in flight; refuse at the limit, else reserve.
So two calls on two replicas can never both take the last of a budget.

Why there is no blind window between replicas: a finished call leaves `:d` only when a ledger
read that holds its row is installed as the new figures, in the same script; reads are taken by
one process at a time (the `:l` lock, its token checked when the figures are installed, so a
reader that stalled past the lock's expiry cannot install old figures), so figures installed
later are never older than those they replace. Until then the call is counted from `:d`; a row
the ledger already has while the call is still in `:d` counts twice for at most one refresh,
which errs on the safe side. Entries expire after `stale_seconds` (a process killed mid-call
holds no budget after that), and every key after a day without use.

Redis time, not each host's clock, dates everything, so replicas on different hosts agree.
"""

from __future__ import annotations

import time
import uuid
from typing import Callable

from backlog_ops.common.extras import require
from backlog_ops.common.secrets import scrub_dsn
from backlog_ops.common.settings import settings
from backlog_ops.errors import BudgetStoreError, ConfigError
from backlog_ops.policy.counts import Counts, LedgerRead, Verdict
from backlog_ops.policy.limits import TicketPolicy

__all__ = ["RedisCounts", "shared_counts_factory"]

_KEY_TTL_MS = 24 * 3600 * 1000
_LOCK_MS = 10_000  # longer than a ledger read may take (its connect timeout is 2 s)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: s, f, l. ARGV: call_id, estimate, escalation (0/1), budget ('' none), max escalations
# ('' none), dry (0/1), refresh ms, stale ms, token, lock ms, key ttl ms, may read (0/1).
# The limit rule is the one of policy/counts.decide: refuse once used >= limit.
_RESERVE = _NOW + """
local s = redis.call('HMGET', KEYS[1], 'at', 'cost', 'esc', 'fcost', 'fesc', 'dcost', 'desc')
local at = tonumber(s[1])
if ARGV[12] == '1' and (not at or now - at >= tonumber(ARGV[7])) then
  if redis.call('SET', KEYS[3], ARGV[9], 'NX', 'PX', ARGV[10]) then return {'read'} end
  if not at then return {'wait'} end
end
local fcost, fesc = tonumber(s[4]) or 0, tonumber(s[5]) or 0
local cost = (tonumber(s[2]) or 0) + fcost + (tonumber(s[6]) or 0)
local esc = (tonumber(s[3]) or 0) + fesc + (tonumber(s[7]) or 0)
local status = 'ok'
if ARGV[4] ~= '' and cost >= tonumber(ARGV[4]) then status = 'budget'
elseif ARGV[5] ~= '' and esc >= tonumber(ARGV[5]) then status = 'escalations'
elseif ARGV[6] == '1' then status = 'checked'
else
  local est = tonumber(ARGV[2])
  if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. string.format('%d', now + tonumber(ARGV[8]))) == 1 then
    redis.call('HINCRBYFLOAT', KEYS[1], 'fcost', est)
    if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'fesc', 1) end
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[11])
  redis.call('PEXPIRE', KEYS[2], ARGV[11])
end
local age = -1
if at then age = now - at end
return {status, tostring(cost), tostring(esc), tostring(fcost), tostring(fesc), tostring(age)}
"""

# KEYS: s, f. ARGV: call_id. Returns the entry it removed (or nil).
_TAKE = """
local v = redis.call('HGET', KEYS[2], ARGV[1])
if v then
  redis.call('HDEL', KEYS[2], ARGV[1])
  local est, e = string.match(v, '^(%S+) (%d)')
  redis.call('HINCRBYFLOAT', KEYS[1], 'fcost', -tonumber(est))
  if e == '1' then redis.call('HINCRBY', KEYS[1], 'fesc', -1) end
end
"""

_RELEASE = _TAKE + "return 1"

# KEYS: s, f, d. ARGV: call_id, cost, escalation (0/1), stale ms, key ttl ms.
_SETTLE = _NOW + _TAKE + """
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. string.format('%d', now + tonumber(ARGV[4]))) == 1 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'dcost', tonumber(ARGV[2]))
  if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'desc', 1) end
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return 1
"""

# KEYS: s, f, d, l. ARGV: token, ledger cost, ledger escalations, key ttl ms, ids the ledger has...
# Installs the figures only while the lock is still ours; recounts the sums exactly, dropping
# expired entries.
_APPLY = _NOW + """
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[4])
for i = 5, #ARGV do redis.call('HDEL', KEYS[3], ARGV[i]) end
local function sum(key)
  local c, e = 0, 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local v, x, exp = string.match(all[i + 1], '^(%S+) (%d) (%S+)$')
    if not v or tonumber(exp) < now then
      redis.call('HDEL', key, all[i])
    else
      c = c + tonumber(v)
      if x == '1' then e = e + 1 end
    end
  end
  return c, e
end
local fc, fe = sum(KEYS[2])
local dc, de = sum(KEYS[3])
redis.call('HSET', KEYS[1], 'at', string.format('%d', now), 'cost', ARGV[2], 'esc', ARGV[3],
           'fcost', tostring(fc), 'fesc', fe, 'dcost', tostring(dc), 'desc', de)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return 1
"""

# KEYS: l. ARGV: token.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class RedisCounts:
    """The shared reservation store; thread-safe (redis-py pools connections).

    Every method raises BudgetStoreError when Redis cannot be reached or answers an error; the
    engine then decides (policy/engine.py). A short socket timeout of its own keeps an outage
    from holding a call for long.
    """

    shared = True

    def __init__(self, url: str, read: LedgerRead, *, prefix: str = "backlog:", refresh_seconds: float = 2.0,
                 stale_seconds: float = 900.0, socket_timeout: float = 0.5, wait_seconds: float = 3.0) -> None:
        redis = require("redis", "redis", "Shared ticket budgets (BACKLOG_CONTEXT_URL)")
        self.url = url
        self.prefix = prefix
        try:
            self.redis = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
        except ValueError as exc:
            raise ConfigError(f"BACKLOG_CONTEXT_URL {scrub_dsn(url)} is not a Redis URL: {scrub_dsn(exc, url)}") from None
        self._read = read
        self._refresh_ms = int(refresh_seconds * 1000)
        self._stale_ms = int(stale_seconds * 1000)
        self._wait = wait_seconds
        self._failing = False  # this process's last ledger read failed
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)
        self._release = self.redis.register_script(_RELEASE)
        self._apply = self.redis.register_script(_APPLY)
        self._unlock = self.redis.register_script(_UNLOCK)

    def keys(self, key: tuple[str | None, str]) -> tuple[str, str, str, str]:
        base = f"{self.prefix}budget:{{{key[0] or '-'}/{key[1]}}}"
        return f"{base}:s", f"{base}:f", f"{base}:d", f"{base}:l"

    # -- the store's operations ------------------------------------------------------------------

    def reserve(self, key: tuple[str | None, str], policy: TicketPolicy, call_id: str, *, estimate: float,
                escalation: bool, budget: float | None, max_escalations: int | None, dry: bool = False) -> Verdict:
        s, f, d, lock = self.keys(key)
        token = uuid.uuid4().hex
        may_read, read_failed = True, False
        deadline = time.monotonic() + self._wait
        while True:
            answer = self._call(self._reserve, keys=[s, f, lock], args=[
                call_id, repr(max(0.0, float(estimate))), int(escalation), "" if budget is None else repr(float(budget)),
                "" if max_escalations is None else int(max_escalations), int(dry), self._refresh_ms, self._stale_ms,
                token, _LOCK_MS, _KEY_TTL_MS, int(may_read)])
            kind = answer[0].decode()
            if kind == "read":
                if not self._refresh(key, policy, token):
                    may_read, read_failed = False, True
                continue
            if kind == "wait":  # the first read of this ticket is under way in another process
                if time.monotonic() > deadline:
                    # Its reader is gone (killed mid-read): take the lock over; its late install is refused.
                    self._call(self.redis.delete, lock)
                    deadline = time.monotonic() + self._wait
                time.sleep(0.01)
                continue
            cost, esc, fly_cost, fly_esc, age = (float(x) for x in answer[1:])
            stale = age < 0 or age >= self._refresh_ms
            unreadable = read_failed or (self._failing and stale)
            return Verdict(kind, Counts(cost, int(esc), max(0.0, fly_cost), max(0, int(fly_esc)), unreadable))

    def settle(self, key: tuple[str | None, str], call_id: str, cost: float, escalation: bool) -> None:
        s, f, d, _ = self.keys(key)
        self._call(self._settle, keys=[s, f, d], args=[call_id, repr(max(0.0, float(cost))), int(escalation),
                                                       self._stale_ms, _KEY_TTL_MS])

    def release(self, key: tuple[str | None, str], call_id: str) -> None:
        s, f, _, _ = self.keys(key)
        self._call(self._release, keys=[s, f], args=[call_id])

    def usage(self, key: tuple[str | None, str], policy: TicketPolicy) -> Counts:
        return self.reserve(key, policy, "", estimate=0.0, escalation=False, budget=None, max_escalations=None,
                            dry=True).counts

    # -- inside ----------------------------------------------------------------------------------

    def _refresh(self, key: tuple[str | None, str], policy: TicketPolicy, token: str) -> bool:
        """Read the ledger (we hold the lock) and install its figures; False when it cannot be read."""
        s, f, d, lock = self.keys(key)
        pending = [x.decode() for x in self._call(self.redis.hkeys, d)]
        figures = self._read(key[1], key[0], policy, pending)
        if figures is None:
            self._failing = True
            self._call(self._unlock, keys=[lock], args=[token])
            return False
        self._failing = False
        cost, escalations, present = figures
        self._call(self._apply, keys=[s, f, d, lock], args=[token, repr(float(cost)), int(escalations), _KEY_TTL_MS,
                                                             *sorted(present)])
        return True

    def _call(self, fn, *args, **kwargs):
        import redis

        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise BudgetStoreError(f"the shared budget store {scrub_dsn(self.url)} is unavailable: "
                                   f"{scrub_dsn(exc, self.url)}") from None


def shared_counts_factory(**kwargs) -> Callable[[LedgerRead], RedisCounts] | None:
    """What makes the shared store when the team's Redis is configured (BACKLOG_CONTEXT_URL), else None.

    The engine calls it with its ledger reader. Keys go under BACKLOG_CONTEXT_PREFIX + "budget:",
    beside the contexts.
    """
    conf = settings()
    if not conf.context_url:
        return None
    return lambda read: RedisCounts(conf.context_url, read, prefix=conf.context_prefix, **kwargs)
