package console

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/records"
)

// An import takes three pages (upload, mapping and preview, start), and
// works without JavaScript, so the uploaded file has to outlive the
// request that brought it: it stays spooled on this server's disk under a
// random token, usable only by the session that uploaded it, until the
// import starts, the upload is cancelled, or it expires. The number kept
// is bounded, each by the importer's file size limit. They are this
// process's: with several replicas, route each person to one replica, as
// for the default session store.
const (
	// uploadLifetime is how long an upload is kept unused.
	uploadLifetime = 30 * time.Minute
	// maxUploadsPerSession is how many uploads one session keeps; a newer
	// one replaces the oldest.
	maxUploadsPerSession = 3
	// maxUploads is how many uploads the console keeps in all.
	maxUploads = 16
)

// errTooManyUploads refuses an upload when the console keeps maxUploads
// already.
var errTooManyUploads = errors.New("console: too many import uploads kept")

// errUploadGone is the answer for a token of an upload that is not kept
// (any more) or is another session's.
var errUploadGone = fmt.Errorf("console: upload not kept: %w", records.ErrNotFound)

// pendingUpload is one kept upload with the import's settings so far.
type pendingUpload struct {
	token string
	// owner is the CSRF token of the session that uploaded it, which is
	// unique to that session; workspace is checked too.
	owner     string
	workspace string
	created   time.Time
	// mu is held while the upload is read, so that expiry or a start in
	// another request does not remove it under the reader.
	mu      sync.Mutex
	in      ingest.ImportInput
	up      *ingest.Upload
	expires time.Time
	timer   *time.Timer
	// columns are those of the mapping form last shown, which the form's
	// selects are numbered by.
	columns []ingest.PreviewColumn
}

// importUploads keeps uploads between the pages of an import.
type importUploads struct {
	clock func() time.Time

	mu      sync.Mutex
	byToken map[string]*pendingUpload
}

func newImportUploads(clock func() time.Time) *importUploads {
	return &importUploads{clock: clock, byToken: map[string]*pendingUpload{}}
}

// add keeps up for the session of req and answers its token. Kept, up is
// the store's to close.
func (s *importUploads) add(req *request, in ingest.ImportInput, up *ingest.Upload) (string, error) {
	now := s.clock()
	s.mu.Lock()
	var expired, evict []*pendingUpload
	var mine []*pendingUpload
	for _, p := range s.byToken {
		switch {
		case !now.Before(p.expires):
			expired = append(expired, p)
		case p.owner == req.csrf:
			mine = append(mine, p)
		}
	}
	for _, p := range expired {
		delete(s.byToken, p.token)
	}
	for len(mine) >= maxUploadsPerSession {
		oldest := 0
		for i, p := range mine {
			if p.created.Before(mine[oldest].created) {
				oldest = i
			}
		}
		evict = append(evict, mine[oldest])
		delete(s.byToken, mine[oldest].token)
		mine = append(mine[:oldest], mine[oldest+1:]...)
	}
	if len(s.byToken) >= maxUploads {
		s.mu.Unlock()
		s.closeAll(append(expired, evict...))
		return "", errTooManyUploads
	}
	p := &pendingUpload{token: randomToken(), owner: req.csrf, workspace: req.id.Workspace, created: now,
		in: in, up: up, expires: now.Add(uploadLifetime)}
	p.timer = time.AfterFunc(uploadLifetime, func() { s.remove(p.token) })
	s.byToken[p.token] = p
	s.mu.Unlock()
	s.closeAll(append(expired, evict...))
	return p.token, nil
}

// use answers the upload of token, locked, with its lifetime renewed, or
// errUploadGone. Unlock p.mu when done.
func (s *importUploads) use(req *request, token string) (*pendingUpload, error) {
	now := s.clock()
	s.mu.Lock()
	p := s.byToken[token]
	if p == nil || !sameToken(p.owner, req.csrf) || p.workspace != req.id.Workspace {
		s.mu.Unlock()
		return nil, errUploadGone
	}
	if !now.Before(p.expires) {
		delete(s.byToken, token)
		s.mu.Unlock()
		s.closeAll([]*pendingUpload{p})
		return nil, errUploadGone
	}
	p.expires = now.Add(uploadLifetime)
	p.timer.Reset(uploadLifetime)
	s.mu.Unlock()
	p.mu.Lock()
	if p.up == nil {
		p.mu.Unlock()
		return nil, errUploadGone
	}
	return p, nil
}

// remove forgets the upload of token and removes its file, waiting for a
// request reading it.
func (s *importUploads) remove(token string) {
	s.mu.Lock()
	p := s.byToken[token]
	delete(s.byToken, token)
	s.mu.Unlock()
	if p != nil {
		s.closeAll([]*pendingUpload{p})
	}
}

// drop forgets p, which the caller holds locked, and removes its file.
func (s *importUploads) drop(p *pendingUpload) {
	s.mu.Lock()
	delete(s.byToken, p.token)
	s.mu.Unlock()
	p.timer.Stop()
	_ = p.up.Close()
	p.up = nil
}

func (s *importUploads) closeAll(ps []*pendingUpload) {
	for _, p := range ps {
		p.timer.Stop()
		p.mu.Lock()
		if p.up != nil {
			_ = p.up.Close()
			p.up = nil
		}
		p.mu.Unlock()
	}
}
