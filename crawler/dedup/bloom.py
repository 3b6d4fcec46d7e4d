"""Scalable Bloom filters: on Redis bitmaps (shared by all workers) or in process.

Sizing: m = ceil(-n ln p / (ln 2)^2) bits and k = round(m / n * ln 2) hashes,
so 10,000,000 ids at p = 0.001 take about 143.8 M bits (17.1 MiB) and 10 hashes.
Each fingerprint is hashed once, client-side, into two 32-bit values; bit i is
(h1 + i * h2) mod m (Kirsch-Mitzenmacher double hashing), computed in Lua so a
whole batch is ONE atomic script call: two workers never both see the same id
as new. Bits are read and written with BITFIELD, hundreds of bits per command.

Inserting uses ``BITFIELD SET``, whose reply is each bit's previous value, so
one pass both tests and sets: an id is new when any of its bits was 0 (a
repeat later in the same batch finds them set). When the newest layer holds its
capacity (checked after each batch, so it may overfill by one batch), a layer
twice as large with half the error rate is added (the total false-positive
rate stays below 2p); lookups check every layer, inserts go to the newest.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

# KEYS[1] = meta hash, KEYS[2] = layer key prefix
# ARGV = mode ("add" | "check"), capacity, error rate, hashes: 8 bytes per id (two
# little-endian uint32), one string, so the client sends 4 arguments, not 2n.
# Returns one string of "0"/"1" per id: cheaper to send and parse than n integers.
LUA_CHECK_AND_ADD = """
local meta, layer_prefix, mode = KEYS[1], KEYS[2], ARGV[1]
local base_capacity, base_error = tonumber(ARGV[2]), tonumber(ARGV[3])
local blob = ARGV[4]
local n = #blob / 8
local MAX_ARGS = 3000

local function size_for(capacity, error_rate)
  local bits = math.ceil(-capacity * math.log(error_rate) / (math.log(2) ^ 2))
  return bits, math.max(1, math.floor(bits / capacity * math.log(2) + 0.5))
end
local function new_layer(l, capacity, error_rate)
  local bits, hashes = size_for(capacity, error_rate)
  redis.call('HSET', meta, 'layers', l + 1, 'cap:' .. l, capacity, 'bits:' .. l, bits,
             'hashes:' .. l, hashes, 'count:' .. l, 0)
end
local function layer_info(l)
  local v = redis.call('HMGET', meta, 'bits:' .. l, 'hashes:' .. l, 'cap:' .. l, 'count:' .. l)
  return tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
end

local present, h1s, h2s = {}, {}, {}
for i = 1, n do
  present[i] = 0
  local h1, h2 = struct.unpack('<I4I4', blob, 8 * i - 7)
  if h2 % 2 == 0 then h2 = h2 + 1 end  -- odd: the probes never collapse onto one bit
  h1s[i], h2s[i] = h1, h2
end
local layers = tonumber(redis.call('HGET', meta, 'layers') or '0')
if layers == 0 then
  if mode == 'check' then return string.rep('0', n) end
  new_layer(0, base_capacity, base_error)
  layers = 1
end

-- Probe every item not yet known present with one op per hash, many items per
-- BITFIELD call. With SET the reply is each bit's previous value, so one pass
-- both tests and inserts: an item is new when any of its bits was 0.
local function probe(l, op, on_item)
  local bits, hashes = layer_info(l)
  local width = (op == 'SET') and 4 or 3
  local per_call = math.max(1, math.floor(MAX_ARGS / (width * hashes)))
  local i = 1
  while i <= n do
    local args, na, items, ni = {}, 0, {}, 0
    while i <= n and ni < per_call do
      if present[i] == 0 then
        ni = ni + 1
        items[ni] = i
        local h1, h2 = h1s[i], h2s[i]
        for k = 0, hashes - 1 do
          args[na + 1] = op; args[na + 2] = 'u1'; args[na + 3] = (h1 + k * h2) % bits
          if width == 4 then args[na + 4] = 1 end
          na = na + width
        end
      end
      i = i + 1
    end
    if na > 0 then
      local got = redis.call(op == 'SET' and 'BITFIELD' or 'BITFIELD_RO', layer_prefix .. l, unpack(args, 1, na))
      for j = 1, ni do
        local all_set, base = true, (j - 1) * hashes
        for k = 1, hashes do
          if got[base + k] == 0 then all_set = false break end
        end
        on_item(items[j], all_set)
      end
    end
  end
end

local function mark_present(i, all_set) if all_set then present[i] = 1 end end
local newest = layers - 1
for l = 0, (mode == 'check') and newest or newest - 1 do probe(l, 'GET', mark_present) end
if mode == 'check' then return table.concat(present) end

local new, added = {}, 0
for i = 1, n do new[i] = 0 end
probe(newest, 'SET', function(i, all_set)
  if not all_set then new[i] = 1; added = added + 1 end
end)
local _, _, capacity, count = layer_info(newest)
count = count + added
redis.call('HSET', meta, 'count:' .. newest, count)
-- full: the next batch goes to a layer twice as large with half the error rate
if count >= capacity then new_layer(newest + 1, capacity * 2, base_error / (2 ^ (newest + 1))) end
return table.concat(new)
"""


def size_for(capacity: int, error_rate: float) -> tuple[int, int]:
    """(bits, hashes) of an optimal Bloom filter for this many items at this false-positive rate."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if not 0 < error_rate < 1:
        raise ValueError(f"error_rate must be between 0 and 1, got {error_rate}")
    bits = math.ceil(-capacity * math.log(error_rate) / math.log(2) ** 2)
    return bits, max(1, round(bits / capacity * math.log(2)))


def digest(fingerprint: str | bytes) -> bytes:
    """8 bytes: the two little-endian 32-bit hashes of the double hashing."""
    data = fingerprint.encode() if isinstance(fingerprint, str) else fingerprint
    return hashlib.blake2b(data, digest_size=8).digest()


def hash_pair(fingerprint: str | bytes) -> tuple[int, int]:
    """The two hashes as numbers; h2 is odd so the k probes never collapse onto one bit."""
    value = int.from_bytes(digest(fingerprint), "little")
    return value & 0xFFFFFFFF, (value >> 32) | 1


class BloomFilter:
    """A scalable Bloom filter on Redis; ``check_and_add`` is atomic across workers."""

    def __init__(self, redis, name: str, capacity: int, error_rate: float, prefix: str = "crawler:"):
        size_for(capacity, error_rate)  # validates
        self.redis = redis
        self.capacity, self.error_rate = capacity, error_rate
        # the {hash tag} keeps every key of one filter in one Redis Cluster slot
        self.meta_key = f"{prefix}bloom:{{{name}}}:meta"
        self.layer_prefix = f"{prefix}bloom:{{{name}}}:"
        self.script = redis.register_script(LUA_CHECK_AND_ADD)

    size_for = staticmethod(size_for)

    async def _call(self, mode: str, fingerprints: Sequence[str | bytes]) -> list[bool]:
        if not fingerprints:
            return []
        blob = b"".join(map(digest, fingerprints))
        result = await self.script(
            keys=[self.meta_key, self.layer_prefix], args=[mode, self.capacity, self.error_rate, blob]
        )
        return [flag == 49 for flag in result]  # b"1"

    async def check_and_add(self, fingerprints: Sequence[str | bytes]) -> list[bool]:
        """True for each fingerprint that was new (and is now added); repeats in the batch are not new."""
        return await self._call("add", fingerprints)

    async def contains(self, fingerprints: Sequence[str | bytes]) -> list[bool]:
        """True where the fingerprint is (probably) present; adds nothing."""
        return await self._call("check", fingerprints)

    async def layers(self) -> int:
        return int(await self.redis.hget(self.meta_key, "layers") or 0)

    async def keys(self) -> list[str]:
        return [self.meta_key] + [f"{self.layer_prefix}{n}" for n in range(await self.layers())]

    async def memory_bytes(self) -> int:
        return sum([await self.redis.memory_usage(key) or 0 for key in await self.keys()])

    async def clear(self) -> None:
        await self.redis.delete(*await self.keys())


class LocalBloomFilter:
    """The same filter in process memory, for runs without Redis."""

    def __init__(self, name: str, capacity: int, error_rate: float):
        size_for(capacity, error_rate)
        self.name, self.capacity, self.error_rate = name, capacity, error_rate
        self._layers: list[tuple[bytearray, int, int, int]] = []  # (bits, m, k, capacity)
        self._counts: list[int] = []

    size_for = staticmethod(size_for)

    def _add_layer(self) -> None:
        level = len(self._layers)
        capacity = self.capacity * 2**level
        bits, hashes = size_for(capacity, self.error_rate / 2**level)
        self._layers.append((bytearray((bits + 7) // 8), bits, hashes, capacity))
        self._counts.append(0)

    @staticmethod
    def _positions(h1: int, h2: int, bits: int, hashes: int):
        return [(h1 + k * h2) % bits for k in range(hashes)]

    def _present(self, h1: int, h2: int) -> bool:
        for array, bits, hashes, _ in self._layers:
            if all(array[p >> 3] >> (p & 7) & 1 for p in self._positions(h1, h2, bits, hashes)):
                return True
        return False

    async def contains(self, fingerprints: Sequence[str | bytes]) -> list[bool]:
        return [self._present(*hash_pair(f)) for f in fingerprints]

    async def check_and_add(self, fingerprints: Sequence[str | bytes]) -> list[bool]:
        if not self._layers:
            self._add_layer()
        new = []
        for fingerprint in fingerprints:
            h1, h2 = hash_pair(fingerprint)
            if self._present(h1, h2):
                new.append(False)
                continue
            if self._counts[-1] >= self._layers[-1][3]:
                self._add_layer()
            array, bits, hashes, _ = self._layers[-1]
            for p in self._positions(h1, h2, bits, hashes):
                array[p >> 3] |= 1 << (p & 7)
            self._counts[-1] += 1
            new.append(True)
        return new

    async def layers(self) -> int:
        return len(self._layers)

    async def memory_bytes(self) -> int:
        return sum(len(layer[0]) for layer in self._layers)

    async def clear(self) -> None:
        self._layers.clear()
        self._counts.clear()
