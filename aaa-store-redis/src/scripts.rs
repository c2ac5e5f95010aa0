//! The Lua scripts: each logical store operation is one of them, so it is one atomic step.
//!
//! Conventions: times are ms since the epoch (below 2^48, so exact in Lua's doubles); numbers
//! handed to Redis commands go through `num` (decimal, never an exponent); the value layout is
//! that of `codec` (1-based in Lua: version at 1, id at 2–9, last activity at 10, start at 16,
//! idle timeout at 22, absolute deadline at 28, flags at 34, address from 35). `ARGV[1]` is
//! always the names' base `{P}v3:` (hash tag and layout version; `tag` in the scripts): the
//! scripts name the keys of the table from it, and `KEYS[1]` (the bucket index `{P}v3:due`,
//! in the same slot) routes the call on Redis Cluster.
//!
//! Layout (see the crate docs): `{P}v3:s:<b>` hashes (the buckets) hold the sessions (field:
//! 32-byte key, value: the record), `b` = the key's first two bytes mod 4096, and the id index
//! (field: 8-byte id, value: the key), `b` = the id mod 4096 — the ids this store makes carry
//! their key's bucket in their low 12 bits, so a session and its index entry share one hash;
//! `{P}v3:u:<name>` hashes hold a user's ids, once a create with a per-user limit has asked for
//! them (the user index); `{P}v3:due` scores each bucket with a lower bound of the earliest
//! deadline of its sessions, and holds the count of sessions as the score of its member `n`,
//! offset by 2^50 (above any time, so never due), and the member `p` while the user index is
//! kept. Fields of 8 bytes are index entries, every other field is a session (one whose key is
//! not 32 bytes long is corrupt). `{P}v3:g:<key>` strings (32-byte key) mark a session removed
//! a few seconds ago (value: its id), and `{P}v3:r:<nonce><subject>` strings keep the answer
//! of a call that removed sessions (16-byte nonce, one per call; subject: the key, the id, or
//! the claim's time in decimal); both expire by their TTL.

use std::sync::LazyLock;

use redis::Script;

/// Helpers shared by the scripts.
const PRELUDE: &str = r#"
local B = 4096
local MAXMS = 281474976710655
local NBASE = 1125899906842624
local RBASE = 2 * NBASE
local SLACK = 60000
local function num(x) return string.format('%.0f', x) end
-- Makes a key live at least ttl ms more (sets a TTL if it has none); never shortens it. When
-- it must extend, it adds a minute more, so that a busy key is not extended on every call.
-- An absent key (-2) is left absent.
local function extend(k, ttl)
  ttl = math.min(ttl, MAXMS)
  local left = redis.call('PTTL', k)
  if left ~= -2 and left < ttl then redis.call('PEXPIRE', k, num(ttl + SLACK)) end
end
-- Adds d to the count of sessions (the score of `n` in due, offset by NBASE; never below 0).
-- A decrement never creates due (which a create gives a TTL): an absent count stays absent,
-- and an absent count is "unknown" to the total limit, which then counts exactly.
local function count_add(due, d)
  if d < 0 then
    local c = redis.call('ZSCORE', due, 'n')
    if not c or tonumber(c) <= NBASE then return end
  end
  local c = tonumber(redis.call('ZINCRBY', due, d, 'n'))
  if c < NBASE then
    -- The count was absent (ZINCRBY started from 0).
    redis.call('ZADD', due, num(NBASE + math.max(c, 0)), 'n')
  end
end
-- The bucket of a 32-byte key, and of an 8-byte id (the hash that holds its index entry).
local function kb(k) return (string.byte(k, 1) * 256 + string.byte(k, 2)) % B end
local function ib(id) return (string.byte(id, 7) * 256 + string.byte(id, 8)) % B end
-- The fields of a well-formed version-2 value, or nil.
local function parse(v)
  if #v < 39 or string.byte(v, 1) ~= 2 then return nil end
  local last, start, idle, abs = struct.unpack('>I6I6I6I6', v, 10)
  local flags = string.byte(v, 34)
  if flags >= 16 then return nil end
  local mech = math.floor(flags / 4)
  if mech == 3 then return nil end
  local p = 39
  if flags % 4 >= 2 then p = 51 end
  if mech == 0 then
    local ml = string.byte(v, p)
    if not ml then return nil end
    p = p + 1 + ml
  end
  local ul = string.byte(v, p)
  if not ul or #v ~= p + ul then return nil end
  return { id = string.sub(v, 2, 9), last = last, idle = idle, abs = abs,
           user = string.sub(v, p + 1, p + ul) }
end
-- When a session expires: its idle or absolute deadline, whichever comes first; for a
-- session with neither, `backstop` after its last activity.
local function deadline(f, backstop)
  local d
  if f.idle > 0 then d = f.last + f.idle end
  if f.abs > 0 and (not d or f.abs < d) then d = f.abs end
  if not d then d = f.last + backstop end
  return d
end
-- Drops a removed session (its field already deleted from bucket sk) from the id index, its
-- user's hash and the count. f is nil for a value that cannot be parsed: its index entry is
-- looked for in its own bucket (where the ids this store makes have it); one elsewhere heals
-- later.
local function forget(tag, due, f, m, sk)
  if f then
    local ik = tag .. 's:' .. ib(f.id)
    if redis.call('HGET', ik, f.id) == m then redis.call('HDEL', ik, f.id) end
    redis.call('HDEL', tag .. 'u:' .. f.user, f.id)
  else
    local all = redis.call('HGETALL', sk)
    for i = 1, #all, 2 do
      if #all[i] == 8 and all[i + 1] == m then redis.call('HDEL', sk, all[i]) end
    end
  end
  count_add(due, -1)
end
-- Marks the session under key m (id `id`) removed, for `ms` ms (a decimal string).
local function gone(tag, m, id, ms)
  redis.call('SET', tag .. 'g:' .. m, id, 'PX', ms)
end
-- A removing call's answer, kept for `ms` ms under the call's nonce and what it was asked to
-- remove (its key, its id, or its claim's time: a nonce met twice, were it ever, answers only
-- the same question): the same call, sent again after its answer was lost, answers the same
-- (and removes nothing more).
local function keep(tag, call, answer, ms)
  redis.call('SET', tag .. 'r:' .. call, answer, 'PX', ms)
end
local function kept(tag, call) return redis.call('GET', tag .. 'r:' .. call) end
"#;

/// Creates: for each session, insert-if-absent on key and id, with the limits, each one
/// atomic step (the whole call is). Nothing of a session is written unless it is created (a
/// refused create may still build the user index, which is about the others).
/// Concurrent creates are sent together, so one call carries many.
///
/// KEYS: due. ARGV: tag, backstop, items, deadline: items is, for each session, packed
/// (numbers big-endian) — key (32 bytes), id (8), now (8), ttl (8), per-user limit (4; 0:
/// none), total limit (4; 0: none), then four strings, each after its length (2): the name of
/// its bucket, the name of its id's bucket (empty when it is the same: always for the ids this
/// store makes), its bucket number in decimal, and the value. (One argument for the whole
/// batch, read by one `struct.unpack` per session: parsing many small arguments, or building
/// names in Lua, costs the server more; every string made in Lua costs it too.) deadline: the
/// earliest deadline of the batch's sessions, in decimal: the bucket index's score for every
/// bucket they go to (a lower bound of each one's deadline, as the index needs). A session
/// whose key holds a removal mark with its id (see `REMOVE`) is answered `o` and not written.
/// Returns one string, a byte per session: `o` (created), `k` (key taken), `i` (id taken), `u`
/// (user limit), `t` (total limit), or `x` (a value that does not parse, which the client
/// never sends).
const CREATE: &str = r#"
local due, tag, backstop, batch_deadline = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[4]
-- The live sessions in total, once counted exactly in this call (nil until then); kept up to
-- date by this call's creates.
local live_total
-- What the sessions created in this call change, written once at the end (the call is one
-- atomic step either way): the sessions not yet in the bucket index's count, the ZADD
-- arguments of their buckets (each scored with the batch's earliest deadline), the TTL the
-- bucket index needs, and the TTL each user's hash needs (users repeat; buckets rarely do, so
-- theirs are extended at once). Every Lua operation costs the server: this loop is kept
-- short.
local added = 0
local scores = {}
local due_ttl = 0
local user_ttls = {}
-- Whether the user index is kept: only a per-user limit reads it, so a table whose creates
-- never ask for one does not pay for it (a fifth of a create's cost). The first create with a
-- per-user limit builds it from the sessions there are, and marks `due` (member `p`): from
-- then on every create keeps it. Should `due` be lost, the mark goes with it, and the next
-- create with a per-user limit builds the index again (adding what is missing).
local indexed = redis.call('ZSCORE', due, 'p')
local function build_user_index()
  for i = 0, B - 1 do
    local bk = tag .. 's:' .. i
    local all = redis.call('HGETALL', bk)
    if #all > 0 then
      -- A user's hash lives as long as the bucket of its sessions (which covers them).
      local left = redis.call('PTTL', bk)
      if left < 0 then left = backstop end
      for j = 2, #all, 2 do
        local f = #all[j - 1] ~= 8 and parse(all[j])
        if f then
          local uk = tag .. 'u:' .. f.user
          redis.call('HSET', uk, f.id, '')
          local t = user_ttls[uk]
          if not t or t < left then user_ttls[uk] = left end
        end
      end
    end
  end
  redis.call('ZADD', due, num(RBASE), 'p')
  indexed = true
end
-- The live sessions at `now`, this one (inserted already, with its index entry) excepted: the
-- count, made exact by counting the buckets if it is unknown or was last made exact 10 s ago
-- or more (it drifts only if Redis drops a bucket by its TTL), less the expired sessions not
-- yet claimed (which only buckets due by now hold). The buckets hold each session and its
-- index entry: half their fields. (Only for ids made elsewhere, or corrupted values: a stale
-- entry adds half a session, a session left without its entry takes half of one away.)
local function count_live(now)
  local c = redis.call('ZSCORE', due, 'n')
  local at = redis.call('ZSCORE', due, 'r')
  local n
  if c and at and now - (tonumber(at) - RBASE) < 10000 then
    n = tonumber(c) - NBASE + added
  else
    local fields = 0
    for i = 0, B - 1 do fields = fields + redis.call('HLEN', tag .. 's:' .. i) end
    n = math.floor(fields / 2) - 1
    redis.call('ZADD', due, num(NBASE + n), 'n')
    redis.call('ZADD', due, num(RBASE + math.min(now, MAXMS)), 'r')
    -- The buckets hold this call's sessions already: the count is exact without them.
    added = 0
  end
  local expired = 0
  for _, db in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', num(now))) do
    local all = redis.call('HGETALL', tag .. 's:' .. db)
    for i = 1, #all, 2 do
      local ef = #all[i] ~= 8 and parse(all[i + 1])
      if ef and deadline(ef, backstop) <= now then expired = expired + 1 end
    end
  end
  return n - expired
end
local function one(m, id, v, now, ttl, per_user, total, b, sk, ik)
  -- This very create, sent again after a lost answer, and its session removed since (or
  -- undone, its caller told it failed): it was created, and stays removed (revocation is
  -- final). A key is the hash of a fresh random cookie: only this create can meet its mark.
  if redis.call('GET', tag .. 'g:' .. m) == id then return 'o' end
  if ik == '' then ik = sk end
  -- Whatever this create's answer, `due` may have been written for it (a user index built,
  -- a count made exact): its TTL must cover this session's (extended once, at the end; an
  -- absent `due` stays absent).
  if ttl > due_ttl then due_ttl = ttl end
  -- The user's hash, when the user index is kept or read.
  local uk
  if per_user > 0 or indexed then
    local f = parse(v)
    if not f then return 'x' end
    uk = tag .. 'u:' .. f.user
  end
  if per_user > 0 and not indexed then
    -- Before this session is inserted: the index holds the others only.
    build_user_index()
  end
  -- Insert-if-absent on the key; undone below if anything refuses.
  if redis.call('HSETNX', sk, m, v) == 0 then
    -- The same value: this very create, sent again after a lost connection.
    if redis.call('HGET', sk, m) == v then return 'o' end
    return 'k'
  end
  -- Insert-if-absent on the id.
  if redis.call('HSETNX', ik, id, m) == 0 then
    local other = redis.call('HGET', ik, id)
    local taken = false
    if #other == 32 then
      local ov = redis.call('HGET', tag .. 's:' .. kb(other), other)
      -- Taken, unless the entry is stale (its session is gone or has another id); an
      -- unreadable value keeps its id.
      if ov then
        local of = parse(ov)
        taken = not of or of.id == id
      end
    end
    if taken then
      redis.call('HDEL', sk, m)
      return 'i'
    end
    redis.call('HSET', ik, id, m)
  end
  -- The limits count live sessions only (deadline after now); this one is not counted yet.
  local refused
  if per_user > 0 then
    local live = 0
    for _, uid in ipairs(redis.call('HKEYS', uk)) do
      local k = #uid == 8 and redis.call('HGET', tag .. 's:' .. ib(uid), uid)
      local uv = k and #k == 32 and redis.call('HGET', tag .. 's:' .. kb(k), k)
      local uf = uv and parse(uv)
      if not uv or (uf and uf.id ~= uid) then
        redis.call('HDEL', uk, uid)
      elseif not uf or deadline(uf, backstop) > now then
        live = live + 1
      end
    end
    if live >= per_user then refused = 'u' end
  end
  if not refused and total > 0 then
    if not live_total then
      -- Under the limit by the count (which includes expired sessions not yet claimed), the
      -- live sessions are too; at it, or unknown, count them.
      local c = redis.call('ZSCORE', due, 'n')
      if not c or tonumber(c) - NBASE + added >= total then live_total = count_live(now) end
    end
    if live_total and live_total >= total then refused = 't' end
  end
  if refused then
    redis.call('HDEL', sk, m)
    redis.call('HDEL', ik, id)
    return refused
  end
  scores[#scores + 1] = batch_deadline
  scores[#scores + 1] = b
  added = added + 1
  if live_total then live_total = live_total + 1 end
  -- `extend`, inline (ttl is at most MAXMS: the client caps it; both keys exist).
  if redis.call('PTTL', sk) < ttl then redis.call('PEXPIRE', sk, num(ttl + SLACK)) end
  if ik ~= sk and redis.call('PTTL', ik) < ttl then
    redis.call('PEXPIRE', ik, num(ttl + SLACK))
  end
  if indexed then
    redis.call('HSET', uk, id, '')
    local t = user_ttls[uk]
    if not t or t < ttl then user_ttls[uk] = ttl end
  end
  return 'o'
end
local out = {}
local items = ARGV[3]
local p, len = 1, #items
while p <= len do
  local m, id, now, ttl, per_user, total, sk, ik, b, v
  m, id, now, ttl, per_user, total, sk, ik, b, v, p = struct.unpack(
    '>c32c8I8I8I4I4I2c0I2c0I2c0I2c0', items, p)
  out[#out + 1] = one(m, id, v, now, ttl, per_user, total, b, sk, ik)
end
if #scores > 0 then redis.call('ZADD', due, 'LT', unpack(scores)) end
if added > 0 then count_add(due, added) end
for k, ttl in pairs(user_ttls) do extend(k, ttl) end
-- The bucket index outlives the buckets it scores.
if due_ttl > 0 then extend(due, due_ttl + SLACK) end
return table.concat(out)
"#;

/// Validations, each atomic, of one or more sessions: the live session under each key, its
/// idle deadline slid when asked. Never recreates a record and never deletes one (expired
/// records wait for a claim). Concurrent validations are sent together, so one script call
/// carries many of them. A session without timeouts has its last activity (the start of its
/// backstop) moved once less than half of the backstop is left.
///
/// KEYS: due. ARGV: tag, grace ms, backstop ms, items: 49 bytes each — key (32), now in ms (8,
/// big-endian), granularity in ms (8), flags (1: +1 touch, +2 id only).
/// Returns one entry per item: nil (absent or expired); the value, or with "id only" its
/// 8-byte id; or `{value}` when the value is not well-formed, for the caller to report.
const VALIDATE: &str = r#"
local due, tag = KEYS[1], ARGV[1]
local grace, backstop = tonumber(ARGV[2]), tonumber(ARGV[3])
local items = ARGV[4]
local function one(p)
  local m = string.sub(items, p, p + 31)
  local sk = tag .. 's:' .. kb(m)
  local v = redis.call('HGET', sk, m)
  if not v then return false end
  local f = parse(v)
  if not f then return { v } end
  local now, gran = struct.unpack('>I8I8', items, p + 32)
  if deadline(f, backstop) <= now then return false end
  local flags = string.byte(items, p + 48)
  local since = now - f.last
  local touch = now > f.last and ((flags % 2 == 1 and since >= gran)
    or (f.idle == 0 and f.abs == 0 and since >= backstop / 2))
  if touch then
    local t = math.min(now, MAXMS)
    v = string.sub(v, 1, 9) .. struct.pack('>I6', t) .. string.sub(v, 16)
    redis.call('HSET', sk, m, v)
    f.last = t
    local ttl = math.max(deadline(f, backstop) - now, 0) + grace
    extend(sk, ttl)
    local ik = tag .. 's:' .. ib(f.id)
    if ik ~= sk then extend(ik, ttl) end
    extend(tag .. 'u:' .. f.user, ttl)
    extend(due, ttl + SLACK)
  end
  if flags >= 2 then return f.id end
  return v
end
local out = {}
for p = 1, #items, 49 do out[#out + 1] = one(p) end
return out
"#;

/// Removes the session under a key, live or expired, and marks it removed: `{P}v3:g:<key>`
/// holds its id for `gone` ms, so that its create, should it arrive again (sent a second time
/// after a lost answer, within the creator's operation budget), does not bring it back.
///
/// Its answer is kept under the call's nonce and the key (`{P}v3:r:<nonce><key>`, as long as
/// the mark): sent again, the call answers the same.
///
/// With an id (undoing a create that failed), only a session of that id is removed, and the
/// key is marked removed with that id even when it holds no session, so that the create,
/// reaching Redis only afterwards, makes nothing.
///
/// KEYS: due. ARGV: tag, key, gone (ms), nonce (16 bytes), and optionally id (8 bytes).
/// Returns the value, or nil.
const REMOVE: &str = r#"
local tag, m, ms, undo = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local call = ARGV[4] .. m
local k = kept(tag, call)
if k then return k end
local sk = tag .. 's:' .. kb(m)
local v = redis.call('HGET', sk, m)
if not v then
  if undo then gone(tag, m, undo, ms) end
  return false
end
local f = parse(v)
-- Undoing a create removes its session only.
if undo and not (f and f.id == undo) then return false end
redis.call('HDEL', sk, m)
forget(tag, KEYS[1], f, m, sk)
if f then gone(tag, m, f.id, ms) end
keep(tag, call, v, ms)
return v
"#;

/// Removes the session with a public id, live or expired, marks it removed and keeps the answer
/// (as `REMOVE`, under `{P}v3:r:<nonce><id>`).
///
/// KEYS: due. ARGV: tag, id (8 bytes), gone (ms), nonce (16 bytes). Returns `{key, value}`,
/// or nil.
const REMOVE_BY_ID: &str = r#"
local tag, id, ms = ARGV[1], ARGV[2], ARGV[3]
local call = ARGV[4] .. id
local k = kept(tag, call)
if k then return { string.sub(k, 1, 32), string.sub(k, 33) } end
local ik = tag .. 's:' .. ib(id)
local m = redis.call('HGET', ik, id)
if not m then return false end
if #m ~= 32 then
  redis.call('HDEL', ik, id)
  return false
end
local sk = tag .. 's:' .. kb(m)
local v = redis.call('HGET', sk, m)
local f = v and parse(v)
if not v or (f and f.id ~= id) then
  -- A stale entry: its session is gone, or has another id (which stays).
  redis.call('HDEL', ik, id)
  return false
end
redis.call('HDEL', sk, m)
redis.call('HDEL', ik, id)
forget(tag, KEYS[1], f, m, sk)
gone(tag, m, id, ms)
keep(tag, call, m .. v, ms)
return { m, v }
"#;

/// Removes and returns up to `max` sessions whose deadline is at or before `now`: the buckets
/// due by now are read whole, their expired sessions deleted and each bucket's score set to
/// its earliest remaining deadline. One script, so each session is returned to exactly one
/// caller, whichever process calls. A value that cannot be parsed is claimed too (the caller
/// reports it as corrupt).
///
/// Each session claimed is marked removed (as by `REMOVE`: its create, were it sent again,
/// would not bring it back), and what the call claimed is kept under its nonce and `now`
/// (`{P}v3:r:<nonce><now>`, as `REMOVE`'s answer): sent again, the call answers the same.
///
/// KEYS: due. ARGV: tag, now, max, backstop, gone (ms), nonce (16 bytes). Returns `{key,
/// value, key, value, …}`.
const CLAIM: &str = r#"
local due, tag = KEYS[1], ARGV[1]
local now, max, backstop = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local call = ARGV[6] .. ARGV[2]
local k = kept(tag, call)
if k then return cmsgpack.unpack(k) end
local out, found = {}, 0
while found < max do
  -- Bucket numbers only: the count's score is above any time.
  local bs = redis.call('ZRANGEBYSCORE', due, '-inf', ARGV[2], 'LIMIT', 0, 32)
  if #bs == 0 then break end
  for _, b in ipairs(bs) do
    local sk = tag .. 's:' .. b
    local all = redis.call('HGETALL', sk)
    local low
    for i = 1, #all, 2 do
      local m, v = all[i], all[i + 1]
      if #m ~= 8 then
        local f = parse(v)
        local d = 0
        if f then d = deadline(f, backstop) end
        if d <= now and found < max then
          redis.call('HDEL', sk, m)
          forget(tag, due, f, m, sk)
          if f then gone(tag, m, f.id, ARGV[5]) end
          out[#out + 1] = m
          out[#out + 1] = v
          found = found + 1
        elseif not low or d < low then
          low = d
        end
      end
    end
    if low then redis.call('ZADD', due, num(low), b) else redis.call('ZREM', due, b) end
  end
  if #bs < 32 then break end
end
if found > 0 then keep(tag, call, cmsgpack.pack(out), ARGV[5]) end
return out
"#;

/// The live sessions of buckets `from` to `to - 1`, and the values that cannot be parsed (for
/// the caller to report).
///
/// KEYS: due. ARGV: tag, from, to, now, backstop. Returns `{key, value, key, value, …}`.
const LIST_PAGE: &str = r#"
local tag = ARGV[1]
local now, backstop = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for b = tonumber(ARGV[2]), tonumber(ARGV[3]) - 1 do
  local all = redis.call('HGETALL', tag .. 's:' .. b)
  for i = 1, #all, 2 do
    if #all[i] ~= 8 then
      local f = parse(all[i + 1])
      if not f or deadline(f, backstop) > now then
        out[#out + 1] = all[i]
        out[#out + 1] = all[i + 1]
      end
    end
  end
end
return out
"#;

/// Whether each key holds a live session.
///
/// KEYS: due. ARGV: tag, now, backstop, keys (32 bytes each). Returns 1 or 0 per key.
const CONTAINS: &str = r#"
local tag, keys = ARGV[1], ARGV[4]
local now, backstop = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for p = 1, #keys, 32 do
  local m = string.sub(keys, p, p + 31)
  local v = redis.call('HGET', tag .. 's:' .. kb(m), m)
  local f = v and parse(v)
  if f and deadline(f, backstop) > now then out[#out + 1] = 1 else out[#out + 1] = 0 end
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
pub(crate) static CONTAINS_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CONTAINS));
