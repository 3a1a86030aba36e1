package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Poller fetches the records of an external source for a pull connector, one
// page per call.
//
// Poll answers the page that req.Cursor designates ("" for the first page of
// a run): its records, each one external document as raw JSON, so that large
// integer ids keep every digit; the cursor of the following page (Next); and
// whether there is one (More). The connector passes Next back unchanged as the
// next call's Cursor while More is true, and stops when it is false. A page
// with no records ends the run whatever More says.
//
// req.Since, when not empty, is the incremental lower bound, inclusive: the
// greatest value of the incremental field already synced. A Poller that can
// filter at the source sends it on every page of the run; one that cannot
// ignores it, and the connector skips what it already has (see Checkpoint).
//
// Poll returns an error when the page could not be fetched. A failure worth
// trying again (the source is overloaded, or briefly unreachable) is a
// *RetryableError, which says when the source asked to be called back;
// Retrying wraps any Poller so that such failures are retried with Backoff.
// Any other error fails the run at once. Poll must be safe to call again with
// the same request: a run that died after a page was fetched but before it
// was committed asks for that page again.
type Poller interface {
	Poll(ctx context.Context, req Request) (Page, error)
}

// Request says which page a Poller should fetch.
type Request struct {
	// Cursor is the Next of the previous page of the run, "" for the first.
	Cursor string
	// Since is the incremental lower bound, inclusive; "" for none.
	Since string
}

// Page is one page of external records.
type Page struct {
	// Records are the page's documents, each a JSON value (usually an
	// object). Decode them with json.Decoder.UseNumber to keep ids exact.
	Records []json.RawMessage
	// Next is the cursor of the following page, meaningful when More is set.
	Next string
	// More says whether there is a following page.
	More bool
}

// RetryableError is a failure worth trying the same request again for: an
// HTTP 429 or 5xx answer, a connection refused or reset. After is how long
// the source asked to be left alone (HTTP Retry-After), zero when it did not
// say.
type RetryableError struct {
	Err   error
	After time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }

func (e *RetryableError) Unwrap() error { return e.Err }

// ErrUnknownKind is returned by Registry.Poller for a kind no factory was
// registered for.
var ErrUnknownKind = errors.New("connector: unknown poller kind")

// Factory makes the Poller of one connector from the connector's definition,
// the JSON document it was created with, which carries the settings of its
// kind (for KindHTTP, the members of Source).
type Factory func(def json.RawMessage) (Poller, error)

// KindHTTP is the kind of the HTTP JSON poller (see HTTPFactory).
const KindHTTP = "http"

// Registry maps connector kinds to the factories of their pollers, so that a
// host can add its own sources (a database, a vendor SDK) beside the HTTP
// JSON poller. The zero value is an empty registry ready to use; it is safe
// for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// Register adds the factory of a kind. It fails when kind is empty, f is nil
// or the kind is taken.
func (r *Registry) Register(kind string, f Factory) error {
	if kind == "" || f == nil {
		return errors.New("connector: Register needs a kind and a factory")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.factories[kind]; ok {
		return fmt.Errorf("connector: poller kind %q is already registered", kind)
	}
	if r.factories == nil {
		r.factories = make(map[string]Factory)
	}
	r.factories[kind] = f
	return nil
}

// Poller makes the Poller of a connector of the given kind from its
// definition. An unregistered kind answers an error wrapping ErrUnknownKind.
func (r *Registry) Poller(kind string, def json.RawMessage) (Poller, error) {
	r.mu.RLock()
	f, ok := r.factories[kind]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKind, kind)
	}
	return f(def)
}

// Kinds answers the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	kinds := make([]string, 0, len(r.factories))
	for k := range r.factories {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}
