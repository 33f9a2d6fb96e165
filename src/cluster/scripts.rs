//! The broker's shared state, as Lua scripts that Redis runs atomically: presence (which nodes
//! hold sessions of a user; which nodes are alive) and the per-user message rate.
//!
//! Keys, under the prefix `p`:
//! - `p:nodes`: sorted set of node ids by their last heartbeat (milliseconds, Redis's clock).
//! - `p:node:{node}:users`: the users with sessions on that node.
//! - `p:user:{user}:nodes`: the nodes with sessions of that user; gone when empty, so a user is
//!   online exactly while it exists.
//! - `p:rate:{user}`: the user's token bucket (`t` tokens at `at` ms), expiring once full.
//!
//! Times come from Redis (`TIME`), so that nodes with skewed clocks agree.

use std::sync::LazyLock;

use redis::Script;

/// A user's first session on a node: returns how many nodes hold sessions of theirs now (1:
/// they just came online in the cluster).
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, node, user = ARGV[1], ARGV[2], ARGV[3]
redis.call('SADD', p .. ':node:' .. node .. ':users', user)
redis.call('SADD', p .. ':user:' .. user .. ':nodes', node)
return redis.call('SCARD', p .. ':user:' .. user .. ':nodes')",
    )
});

/// A user's last session on a node is gone: returns how many nodes still hold sessions of
/// theirs (0: they went offline in the cluster).
pub static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, node, user = ARGV[1], ARGV[2], ARGV[3]
redis.call('SREM', p .. ':node:' .. node .. ':users', user)
redis.call('SREM', p .. ':user:' .. user .. ':nodes', node)
return redis.call('SCARD', p .. ':user:' .. user .. ':nodes')",
    )
});

/// After (re)connecting: the node's users are exactly ARGV[3..]. Returns those of the old list
/// who are now online nowhere (they left while the broker was away), then those who are
/// online now and were nowhere before (they came while it was away).
pub static RESYNC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, node = ARGV[1], ARGV[2]
local mine = p .. ':node:' .. node .. ':users'
local keep = {}
for i = 3, #ARGV do keep[ARGV[i]] = true end
local offline = {}
for _, user in ipairs(redis.call('SMEMBERS', mine)) do
  if not keep[user] then
    local nodes = p .. ':user:' .. user .. ':nodes'
    redis.call('SREM', nodes, node)
    if redis.call('SCARD', nodes) == 0 then offline[#offline + 1] = user end
  end
end
redis.call('DEL', mine)
local online = {}
for i = 3, #ARGV do
  local nodes = p .. ':user:' .. ARGV[i] .. ':nodes'
  redis.call('SADD', mine, ARGV[i])
  if redis.call('SADD', nodes, node) == 1 and redis.call('SCARD', nodes) == 1 then
    online[#online + 1] = ARGV[i]
  end
end
return { offline, online }",
    )
});

/// A node's heartbeat. Returns whether the node was missing from `p:nodes` (first beat, or it
/// was taken for dead, or Redis lost its data: its users must be registered again), then the
/// nodes silent for longer than ARGV[3] ms.
pub static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', p .. ':nodes', now, node)
local result = { added }
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', p .. ':nodes', '-inf', now - ttl)) do
  result[#result + 1] = dead
end
return result",
    )
});

/// A node that stops gives up its lease: its score becomes minus the time it stopped, which is
/// below any deadline, so the next heartbeat of another node reaps it.
pub static STOP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, node = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', p .. ':nodes', node) then redis.call('ZADD', p .. ':nodes', -now, node) end
return 0",
    )
});

/// Takes a dead node's users offline, once in the cluster (the node that removes it from
/// `p:nodes` does it). Returns its last heartbeat, or when it stopped (ms since the epoch;
/// their last-seen time) and the users now online nowhere; nothing if another node got there
/// first.
pub static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local p, dead = ARGV[1], ARGV[2]
local last = redis.call('ZSCORE', p .. ':nodes', dead)
if not last or redis.call('ZREM', p .. ':nodes', dead) == 0 then return {} end
local result = { tostring(math.floor(math.abs(tonumber(last)))) }
local users = p .. ':node:' .. dead .. ':users'
for _, user in ipairs(redis.call('SMEMBERS', users)) do
  local nodes = p .. ':user:' .. user .. ':nodes'
  redis.call('SREM', nodes, dead)
  if redis.call('SCARD', nodes) == 0 then result[#result + 1] = user end
end
redis.call('DEL', users)
return result",
    )
});

/// One token for each of ARGV[4..] (users, repeated once per message), from token buckets of
/// ARGV[1] per second up to ARGV[2]. Per message: -1 when taken, else milliseconds to wait.
pub static TAKE_TOKENS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local rate, burst, p = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = math.ceil(burst / rate * 1000) + 1000
local out = {}
for i = 4, #ARGV do
  local key = p .. ':rate:' .. ARGV[i]
  local bucket = redis.call('HMGET', key, 't', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  if tokens >= 1 then
    tokens = tokens - 1
    out[#out + 1] = -1
  else
    out[#out + 1] = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  end
  redis.call('HSET', key, 't', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', key, ttl)
end
return out",
    )
});
