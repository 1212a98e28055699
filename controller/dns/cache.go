package dns

import (
	"hash/maphash"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const cacheShards = 64

// cacheEntry is one packed response with message ID 0, RD=CD=0 and the
// question name in lower case; owner names equal to it are pointers to it
// (pointOwners), so they follow the spelling a hit copies in.
type cacheEntry struct {
	b       []byte
	qlen    int                // length of the question name on the wire
	counter prometheus.Counter // queries_total child, nil without metrics
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*cacheEntry
	_  [64]byte // keep shards on separate cache lines
}

// packetCache maps a fast-path key to a packed response. It belongs to one
// zoneSet snapshot; a new snapshot starts with an empty cache. When a shard
// is full it is emptied (cheap, and keeps the bound hard).
type packetCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

func newPacketCache(maxEntries int) *packetCache {
	if maxEntries <= 0 {
		return nil
	}
	c := &packetCache{seed: maphash.MakeSeed(), perShard: max(1, maxEntries/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry)
	}
	return c
}

func (c *packetCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

func (c *packetCache) get(key []byte) *cacheEntry {
	sh := c.shard(key)
	sh.mu.RLock()
	e := sh.m[string(key)]
	sh.mu.RUnlock()
	return e
}

func (c *packetCache) put(key []byte, e *cacheEntry) {
	sh := c.shard(key)
	sh.mu.Lock()
	if len(sh.m) >= c.perShard {
		clear(sh.m)
	}
	sh.m[string(key)] = e
	sh.mu.Unlock()
}
