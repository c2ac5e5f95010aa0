//! The Lua scripts: each logical store operation is one of them, so it is one atomic step.
//!
//! Conventions: times are ms since the epoch (below 2^53, so exact in Lua's doubles); numbers
//! handed to Redis commands go through `num` (decimal, never an exponent); the value layout is
//! that of `codec` (1-based in Lua: version at 1, last activity at 2, id at 10, idle timeout at
//! 26, absolute deadline at 34, family at 43). Every key a script touches shares the hash tag
//! of `KEYS[1]`, so the scripts run on Redis Cluster too.

use std::sync::LazyLock;

use redis::Script;

/// Helpers shared by the scripts.
const PRELUDE: &str = r#"
local MAXMS = 4503599627370496
local function num(x) return string.format('%.0f', x) end
-- Raises a key's TTL to at least ttl ms (sets it if the key has none); never lowers it.
local function extend(k, ttl)
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, num(ttl)) end
end
-- The username of a well-formed version-1 value, or nil.
local function user_of(v)
  if #v < 49 or string.byte(v, 1) ~= 1 then return nil end
  local fam = string.byte(v, 43)
  local p
  if fam == 4 then p = 48 elseif fam == 6 then p = 60 else return nil end
  local ml = string.byte(v, p)
  if not ml then return nil end
  p = p + 1 + ml
  local ul = string.byte(v, p)
  if not ul or #v ~= p + ul then return nil end
  return string.sub(v, p + 1, p + ul)
end
-- The deadline of a session, or nil if it has neither timeout.
local function deadline_of(last, idle, abs)
  local d
  if idle > 0 then d = last + idle end
  if abs > 0 and (not d or abs < d) then d = abs end
  if d and d > MAXMS then d = MAXMS end
  return d
end
-- Drops a removed session's entries from the id index and its user's set.
local function forget(v, m, ids, uprefix)
  if #v >= 17 and string.byte(v, 1) == 1 then
    local id = string.sub(v, 10, 17)
    if redis.call('HGET', ids, id) == m then redis.call('HDEL', ids, id) end
  end
  local name = user_of(v)
  if name then redis.call('HDEL', uprefix .. name, m) end
end
"#;

/// Insert-if-absent on key and id, with the limits, in one step.
///
/// KEYS: s, ids, dl, u. ARGV: value, id (8 bytes), member (32 bytes), now, score, ttl,
/// per-user limit (0: none), total limit (0: none), s-key prefix.
/// Returns `ok`, `key`, `id`, `user` or `total`.
const CREATE: &str = r#"
local s, ids, dl, u = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local v, id, m = ARGV[1], ARGV[2], ARGV[3]
local now = tonumber(ARGV[4])
local ttl = tonumber(ARGV[6])
local per_user, total = tonumber(ARGV[7]), tonumber(ARGV[8])
-- Insert-if-absent on the key, with its TTL.
if not redis.call('SET', s, v, 'PX', ARGV[6], 'NX') then
  -- The same value: this very create, sent again after a lost connection.
  if redis.call('GET', s) == v then return 'ok' end
  return 'key'
end
-- Insert-if-absent on the id; the writes so far are undone if anything refuses.
if redis.call('HSETNX', ids, id, m) == 0 then
  local other = redis.call('HGET', ids, id)
  if other ~= m and redis.call('EXISTS', ARGV[9] .. other) == 1 then
    redis.call('DEL', s)
    return 'id'
  end
  -- A stale entry, left by a session Redis expired by TTL before any reaper claimed it.
  redis.call('HSET', ids, id, m)
end
-- The limits count live sessions only (deadline after now); this one is not indexed yet.
local refused
if per_user > 0 then
  local live = 0
  for _, mm in ipairs(redis.call('HKEYS', u)) do
    local sc = redis.call('ZSCORE', dl, mm)
    if not sc then
      redis.call('HDEL', u, mm)
    elseif tonumber(sc) > now then
      live = live + 1
    end
  end
  if live >= per_user then refused = 'user' end
end
if not refused and total > 0 and redis.call('ZCOUNT', dl, '(' .. ARGV[4], '+inf') >= total then
  refused = 'total'
end
if refused then
  redis.call('DEL', s)
  redis.call('HDEL', ids, id)
  return refused
end
redis.call('ZADD', dl, ARGV[5], m)
redis.call('HSET', u, m, '')
extend(ids, ttl)
extend(dl, ttl)
extend(u, ttl)
return 'ok'
"#;

/// Validations, each atomic, of one or more sessions: the live session under each key, its
/// idle deadline slid when asked. Never recreates a record and never deletes one (expired
/// records wait for a claim). Concurrent validations are sent together, so one script call
/// carries many of them.
///
/// The deadline is read from the value (the index holds the same one) except for sessions
/// without any timeout, whose backstop deadline only the index holds.
///
/// KEYS: dl, ids. ARGV: s-key prefix, u-key prefix, grace ms, backstop ms, items: 49 bytes
/// each — member (32), now in ms (8, big-endian), granularity in ms (8), flags (1: +1 touch,
/// +2 id only).
/// Returns one entry per item: nil (absent or expired); the value, or with "id only" its
/// 8-byte id; or `{value}` when the value is not well-formed, for the caller to report.
const VALIDATE: &str = r#"
local dl, ids, sp, up = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local grace, backstop = tonumber(ARGV[3]), tonumber(ARGV[4])
local items = ARGV[5]
local function one(p)
  local m = string.sub(items, p, p + 31)
  local s = sp .. m
  local v = redis.call('GET', s)
  if not v then return false end
  if #v < 49 or string.byte(v, 1) ~= 1 then return { v } end
  local now, gran = struct.unpack('>I8I8', items, p + 32)
  local last, _, _, idle, abs = struct.unpack('>I8I8I8I8I8', v, 2)
  local sc = deadline_of(last, idle, abs)
  if not sc then
    sc = redis.call('ZSCORE', dl, m)
    if not sc then return false end
    sc = tonumber(sc)
  end
  if sc <= now then return false end
  local flags = string.byte(items, p + 48)
  local touch = flags % 2 == 1 and now > last and now - last >= gran
  local newscore = sc
  if touch then
    newscore = deadline_of(now, idle, abs) or (now + backstop)
  elseif idle == 0 and abs == 0 and sc - now < backstop / 2 then
    newscore = now + backstop
  end
  if touch or newscore ~= sc then
    local name = user_of(v)
    if not name then return { v } end
    if touch then
      local now8 = string.sub(items, p + 32, p + 39)
      redis.call('SETRANGE', s, 1, now8)
      v = string.sub(v, 1, 1) .. now8 .. string.sub(v, 10)
    end
    if newscore ~= sc then
      local ttl = math.max(newscore - now, 0) + grace
      redis.call('ZADD', dl, 'XX', num(newscore), m)
      redis.call('PEXPIRE', s, num(ttl))
      extend(dl, ttl)
      extend(ids, ttl)
      extend(up .. name, ttl)
    end
  end
  if flags >= 2 then return string.sub(v, 10, 17) end
  return v
end
local out = {}
for p = 1, #items, 49 do out[#out + 1] = one(p) end
return out
"#;

/// Removes the session under a key, live or expired.
///
/// KEYS: s, dl, ids. ARGV: member, u-key prefix. Returns the value, or nil.
const REMOVE: &str = r#"
local v = redis.call('GET', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if not v then return false end
redis.call('DEL', KEYS[1])
forget(v, ARGV[1], KEYS[3], ARGV[2])
return v
"#;

/// Removes the session with a public id, live or expired.
///
/// KEYS: ids, dl. ARGV: id (8 bytes), s-key prefix, u-key prefix.
/// Returns `{member, value}`, or nil.
const REMOVE_BY_ID: &str = r#"
local m = redis.call('HGET', KEYS[1], ARGV[1])
if not m then return false end
local s = ARGV[2] .. m
local v = redis.call('GET', s)
if not v then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], m)
  return false
end
if user_of(v) and string.sub(v, 10, 17) ~= ARGV[1] then
  -- A stale entry pointing at a session that has another id: that one stays.
  redis.call('HDEL', KEYS[1], ARGV[1])
  return false
end
redis.call('DEL', s)
redis.call('ZREM', KEYS[2], m)
forget(v, m, KEYS[1], ARGV[3])
return { m, v }
"#;

/// Removes and returns up to `max` sessions whose deadline is at or before `now`. One script,
/// so each is returned to exactly one caller, whichever process calls.
///
/// KEYS: dl, ids. ARGV: now, max, s-key prefix, u-key prefix.
/// Returns `{member, value, member, value, …}`.
const CLAIM: &str = r#"
local max = tonumber(ARGV[2])
local out = {}
local found = 0
local examined = 0
while found < max and examined < 10 * max do
  local ms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, max - found)
  if #ms == 0 then break end
  for _, m in ipairs(ms) do
    examined = examined + 1
    local s = ARGV[3] .. m
    local v = redis.call('GET', s)
    redis.call('ZREM', KEYS[1], m)
    if v then
      redis.call('DEL', s)
      forget(v, m, KEYS[2], ARGV[4])
      found = found + 1
      out[#out + 1] = m
      out[#out + 1] = v
    end
  end
end
return out
"#;

/// One page of the live sessions: a `ZSCAN` step over the deadline index (which returns every
/// member present for the whole scan at least once), keeping members whose deadline is after
/// `now`, with their values.
///
/// KEYS: dl. ARGV: cursor, now, count, s-key prefix.
/// Returns `{next cursor, member, value, member, value, …}`.
const LIST_PAGE: &str = r#"
local r = redis.call('ZSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[3])
local now = tonumber(ARGV[2])
local flat = r[2]
local out = { r[1] }
local members, keys = {}, {}
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) > now then
    members[#members + 1] = flat[i]
    keys[#keys + 1] = ARGV[4] .. flat[i]
  end
end
local i = 1
while i <= #keys do
  local chunk = {}
  for j = i, math.min(i + 499, #keys) do chunk[#chunk + 1] = keys[j] end
  local vals = redis.call('MGET', unpack(chunk))
  for j = 1, #chunk do
    if vals[j] then
      out[#out + 1] = members[i + j - 1]
      out[#out + 1] = vals[j]
    end
  end
  i = i + 500
end
return out
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

pub(crate) static CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CREATE));
pub(crate) static VALIDATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(VALIDATE));
pub(crate) static REMOVE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(REMOVE));
pub(crate) static REMOVE_BY_ID_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(REMOVE_BY_ID));
pub(crate) static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CLAIM));
pub(crate) static LIST_PAGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(LIST_PAGE));
