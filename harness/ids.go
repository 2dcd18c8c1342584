package harness

import "math/rand/v2"

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// idSource stands in for Navidrome's id.NewRandom (22 base62 characters, used
// for empty schedule and connection ids). It is seeded, so runs are repeatable.
type idSource struct{ r *rand.Rand }

func newIDSource(seed uint64) *idSource { return &idSource{rand.New(rand.NewPCG(seed, seed))} }

func (s *idSource) next() string {
	b := make([]byte, 22)
	for i := range b {
		b[i] = base62[s.r.IntN(len(base62))]
	}
	return string(b)
}
