package connector

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Checkpoint is where an incremental sync stands: the greatest value of the
// incremental field synced so far, and the external ids of the records
// synced at exactly that value. The next run asks the source for records
// from Value inclusive, and skips those the checkpoint covers, so records
// that share a timestamp across a page or run boundary are neither lost nor
// written twice.
//
// Values compare as instants when both parse as RFC 3339 times, else as
// numbers when both are JSON numbers (exactly, whatever their size), else as
// strings. The zero Checkpoint covers nothing.
type Checkpoint struct {
	Value string   `json:"value,omitempty"`
	IDs   []string `json:"ids,omitempty"` // sorted, without repeats
}

// Covers reports whether a record with this incremental value and external
// id was synced already: its value is below the checkpoint's, or equal to it
// with the id among those synced at it. A record without a value ("") is
// never covered.
func (c Checkpoint) Covers(value, id string) bool {
	if value == "" || c.Value == "" {
		return false
	}
	switch CompareValues(value, c.Value) {
	case -1:
		return true
	case 0:
		_, found := slices.BinarySearch(c.IDs, id)
		return found
	}
	return false
}

// String answers the checkpoint as JSON, for storage; ParseCheckpoint reads
// it back. The zero Checkpoint is "".
func (c Checkpoint) String() string {
	if c.Value == "" {
		return ""
	}
	b, _ := json.Marshal(c)
	return string(b)
}

// ParseCheckpoint reads what Checkpoint.String wrote; "" is the zero
// Checkpoint.
func ParseCheckpoint(s string) (Checkpoint, error) {
	var c Checkpoint
	if s == "" {
		return c, nil
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return Checkpoint{}, fmt.Errorf("connector: checkpoint: %w", err)
	}
	c.normalise()
	return c, nil
}

// normalise sorts the ids and drops repeats, which Covers's binary search
// needs.
func (c *Checkpoint) normalise() {
	slices.Sort(c.IDs)
	c.IDs = slices.Compact(c.IDs)
}

// jsonNumber matches a JSON number; exponents are limited to four digits so
// that comparing a hostile value costs no huge power of ten.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,4})?$`)

// CompareValues orders two incremental values: as instants when both parse
// as RFC 3339 times, else as numbers when both are JSON numbers, else as
// strings. It answers -1, 0 or +1.
func CompareValues(a, b string) int {
	if ta, err := time.Parse(time.RFC3339Nano, a); err == nil {
		if tb, err := time.Parse(time.RFC3339Nano, b); err == nil {
			return ta.Compare(tb)
		}
	}
	if jsonNumber.MatchString(a) && jsonNumber.MatchString(b) {
		if fa, ok := smallInt(a); ok {
			if fb, ok := smallInt(b); ok {
				return cmp.Compare(fa, fb)
			}
		}
		ra, oka := new(big.Rat).SetString(a)
		rb, okb := new(big.Rat).SetString(b)
		if oka && okb {
			return ra.Cmp(rb)
		}
	}
	return cmp.Compare(a, b)
}

// smallInt is the common case of CompareValues (sequence numbers, epoch
// seconds) without big numbers.
func smallInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Sync is the state of an incremental run between pages, what a connector
// stores with each page's writes so that a run killed mid-way resumes after
// the last committed page.
//
// From is the checkpoint the run started at: its Value is the Since of every
// request, and the records it covers are skipped. To is the checkpoint so
// far: the greatest value of the records kept, with their ids at it; it
// becomes the next run's From when this one completes. Comparing against
// From rather than To keeps a source that does not return records in order
// of the field from losing later pages' older records. Cursor is the
// pagination position of the next page.
//
// The ids of a checkpoint grow with the records that share its value: a
// source that stamps 100,000 records with one updated_at stores 100,000 ids
// until a later value comes.
type Sync struct {
	From   Checkpoint `json:"from"`
	To     Checkpoint `json:"to"`
	Cursor string     `json:"cursor,omitempty"`
	Done   bool       `json:"done,omitempty"`
}

// NewSync starts a run at a checkpoint: the stored one, or for a new or reset
// connector Checkpoint{Value: incremental.start} (Source.Start).
func NewSync(from Checkpoint) *Sync {
	from.IDs = slices.Clone(from.IDs)
	from.normalise()
	return &Sync{From: from, To: Checkpoint{Value: from.Value, IDs: slices.Clone(from.IDs)}}
}

// Request answers the request of the run's next page.
func (s *Sync) Request() Request {
	return Request{Cursor: s.Cursor, Since: s.From.Value}
}

// Keep reports whether a record of the page is to be written, and if so
// moves To past it: a greater value starts a new set of ids, an equal one
// joins the set. value is the record's incremental field ("" when it has
// none: it is always kept, and moves nothing), id its external id.
func (s *Sync) Keep(value, id string) bool {
	if s.From.Covers(value, id) {
		return false
	}
	if value == "" {
		return true
	}
	c := 1
	if s.To.Value != "" {
		c = CompareValues(value, s.To.Value)
	}
	switch {
	case c > 0:
		s.To = Checkpoint{Value: value, IDs: []string{id}}
	case c == 0:
		// Sorted, and repeats dropped, once per page by Advance.
		s.To.IDs = append(s.To.IDs, id)
	}
	return true
}

// Advance records that a page's records went through Keep: the run goes on
// at the page's Next, or is done. A page without records ends the run.
func (s *Sync) Advance(p Page) {
	s.To.normalise()
	s.Cursor = p.Next
	s.Done = !p.More || len(p.Records) == 0
	if s.Done {
		s.Cursor = ""
	}
}

// Next answers the state the following run starts from: after a completed
// run its To, otherwise (a run that failed and is not resumed) its From
// again, which is safe whatever order the source returns records in.
func (s *Sync) Next() *Sync {
	if s.Done {
		return NewSync(s.To)
	}
	return NewSync(s.From)
}

// String answers the state as JSON, for storage; ParseSync reads it back.
func (s *Sync) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ParseSync reads what Sync.String wrote; "" is a run from the zero
// checkpoint.
func ParseSync(str string) (*Sync, error) {
	if str == "" {
		return NewSync(Checkpoint{}), nil
	}
	var s Sync
	if err := json.Unmarshal([]byte(str), &s); err != nil {
		return nil, fmt.Errorf("connector: sync state: %w", err)
	}
	s.From.normalise()
	s.To.normalise()
	return &s, nil
}
