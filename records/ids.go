package records

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Crockford's base32, whose order matches byte order, so ids sort by time.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var idGen struct {
	sync.Mutex
	lastMS uint64
	rnd    uint16 // fixed within a millisecond so ids keep their order
	seq    uint64
}

// NewID returns prefix + "_" + 26 characters: 48 bits of Unix milliseconds,
// then 80 bits that grow monotonically within a millisecond from a random
// start. Ids made by one process sort in the order they were made; ids made
// by different processes sort by millisecond.
func NewID(prefix string) string {
	var b [16]byte
	now := uint64(time.Now().UnixMilli())
	idGen.Lock()
	if now <= idGen.lastMS {
		now = idGen.lastMS
		idGen.seq++
	} else {
		idGen.lastMS = now
		var r [10]byte
		_, _ = rand.Read(r[:])
		idGen.rnd = binary.BigEndian.Uint16(r[0:2])
		// Leave headroom so the sequence cannot wrap within a millisecond.
		idGen.seq = binary.BigEndian.Uint64(r[2:10]) >> 1
	}
	seq, rnd := idGen.seq, idGen.rnd
	idGen.Unlock()
	binary.BigEndian.PutUint64(b[0:8], now<<16|uint64(rnd))
	binary.BigEndian.PutUint64(b[8:16], seq)
	return prefix + "_" + encode128(b)
}

// encode128 writes 128 bits as 26 base32 characters (the first holds 3 bits).
func encode128(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = idAlphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// IDFloor answers the smallest id NewID(prefix) can make at t's millisecond
// or later: ids sort by the time they were made, so `id >= IDFloor(p, t)`
// bounds an index range on time without a timestamp column.
func IDFloor(prefix string, t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(t.UnixMilli())<<16)
	return prefix + "_" + encode128(b)
}
