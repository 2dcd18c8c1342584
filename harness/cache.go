package harness

import (
	"context"
	"time"

	"github.com/navidrome/navidrome/plugins/host"
)

// CacheEntry is one stored value with its expiry on the virtual clock.
type CacheEntry struct {
	Value   any // string, int64, float64 or []byte
	TTL     time.Duration
	Expires time.Time
}

// Cache fakes host.CacheService like plugins/host_cache.go (jellydator/ttlcache
// v3.4.1): ttl <= 0 means 24 h, values are typed (a get of another type is
// "not found"), and every hit — get of any type, or has — extends the expiry
// to now+ttl. An entry is expired once its expiry is before now.
type Cache struct {
	clock   *Clock
	entries map[string]*CacheEntry
	// Watch, when set, sees every successful write (key, value).
	Watch func(key string, value any)
}

var _ host.CacheService = (*Cache)(nil)

func NewCache(clock *Clock) *Cache { return &Cache{clock: clock, entries: map[string]*CacheEntry{}} }

func (c *Cache) set(key string, v any, ttlSeconds int64) error {
	ttl := 24 * time.Hour
	if ttlSeconds > 0 {
		ttl = time.Duration(ttlSeconds) * time.Second
	}
	c.entries[key] = &CacheEntry{Value: v, TTL: ttl, Expires: c.clock.Now().Add(ttl)}
	if c.Watch != nil {
		c.Watch(key, v)
	}
	return nil
}

// hit returns the live entry for key, touching it.
func (c *Cache) hit(key string) *CacheEntry {
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if e.Expires.Before(c.clock.Now()) {
		delete(c.entries, key)
		return nil
	}
	e.Expires = c.clock.Now().Add(e.TTL)
	return e
}

func get[T any](c *Cache, key string) (T, bool, error) {
	var zero T
	e := c.hit(key)
	if e == nil {
		return zero, false, nil
	}
	v, ok := e.Value.(T)
	return v, ok, nil
}

func (c *Cache) SetString(_ context.Context, key, value string, ttl int64) error {
	return c.set(key, value, ttl)
}
func (c *Cache) SetInt(_ context.Context, key string, value, ttl int64) error {
	return c.set(key, value, ttl)
}
func (c *Cache) SetFloat(_ context.Context, key string, value float64, ttl int64) error {
	return c.set(key, value, ttl)
}
func (c *Cache) SetBytes(_ context.Context, key string, value []byte, ttl int64) error {
	return c.set(key, value, ttl)
}
func (c *Cache) GetString(_ context.Context, key string) (string, bool, error) {
	return get[string](c, key)
}
func (c *Cache) GetInt(_ context.Context, key string) (int64, bool, error) { return get[int64](c, key) }
func (c *Cache) GetFloat(_ context.Context, key string) (float64, bool, error) {
	return get[float64](c, key)
}
func (c *Cache) GetBytes(_ context.Context, key string) ([]byte, bool, error) {
	return get[[]byte](c, key)
}
func (c *Cache) Has(_ context.Context, key string) (bool, error) { return c.hit(key) != nil, nil }
func (c *Cache) Remove(_ context.Context, key string) error {
	delete(c.entries, key)
	return nil
}

// Dump returns the live entries without touching them.
func (c *Cache) Dump() map[string]CacheEntry {
	out := map[string]CacheEntry{}
	for k, e := range c.entries {
		if !e.Expires.Before(c.clock.Now()) {
			out[k] = *e
		}
	}
	return out
}
