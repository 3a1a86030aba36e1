package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smartlite/crmkit/internal/netguard"
	"github.com/smartlite/crmkit/records"
)

// Pagination kinds.
const (
	PaginateNone   = "none"
	PaginateCursor = "cursor"
	PaginatePage   = "page"
	PaginateOffset = "offset"
	PaginateLink   = "link"
)

// Defaults of HTTPConfig.
const (
	DefaultMaxPageBytes = 32 << 20
	DefaultTimeout      = time.Minute
	DefaultUserAgent    = "SmartLite-Connector/1.0"
)

// maxErrorBody is how much of a failed answer's body an error keeps.
const maxErrorBody = 4 << 10

// maxRedirects bounds the redirects one page request follows.
const maxRedirects = 5

// ErrBlockedAddress is what a request fails with when its URL, a redirect or
// the address actually dialled is one connectors may not reach (loopback,
// private, link-local, metadata…): see OptInHint.
var ErrBlockedAddress = netguard.ErrBlocked

// OptInHint ends the message of a refused address, naming the option that
// allows private ones.
const OptInHint = "private and loopback addresses are reached only when the connector's AllowPrivate option is set (for local testing)"

// Source is where and how the HTTP JSON poller fetches: the url, headers,
// records_path, pagination and incremental members of a connector's
// definition.
type Source struct {
	URL string `json:"url"`
	// Headers are sent with every request, typically Authorization. Their
	// values are secrets: they appear in no error and no log.
	Headers map[string]string `json:"headers,omitempty"`
	// RecordsPath is the dot path to the array of records in the answer
	// ("data", "result.items"); "" means the answer is the array.
	RecordsPath string       `json:"records_path,omitempty"`
	Pagination  Pagination   `json:"pagination"`
	Incremental *Incremental `json:"incremental,omitempty"`
}

// Pagination says how the pages of a source follow each other.
type Pagination struct {
	// Kind is cursor, page, offset, link or none ("" is none).
	Kind string `json:"kind"`
	// CursorParam and NextPath (kind cursor): the query parameter that
	// carries the cursor, and the dot path of the next cursor in the answer.
	CursorParam string `json:"cursor_param,omitempty"`
	NextPath    string `json:"next_path,omitempty"`
	// PageParam (kind page) carries the page number, from 1.
	PageParam string `json:"page_param,omitempty"`
	// OffsetParam (kind offset) carries the number of records already read,
	// from 0.
	OffsetParam string `json:"offset_param,omitempty"`
	// SizeParam, when set, carries PageSize on every request.
	SizeParam string `json:"size_param,omitempty"`
	PageSize  int    `json:"page_size,omitempty"`
}

// Incremental names the field of the records whose greatest value is the
// checkpoint (see Checkpoint) and the query parameter that sends it.
type Incremental struct {
	Field string `json:"field"`
	// Param carries the checkpoint's value (Request.Since); without it every
	// run fetches everything and skips what it has.
	Param string `json:"param,omitempty"`
	// Start is the checkpoint of a new or reset connector.
	Start string `json:"start,omitempty"`
}

// Validate checks a source without network access and answers a
// *records.ValidationError naming every bad member.
func (s Source) Validate() error {
	var fe []records.FieldError
	add := func(field, code, msg string) {
		fe = append(fe, records.FieldError{Field: field, Code: code, Message: msg})
	}
	if s.URL == "" {
		add("url", "required", "url is required")
	} else if _, err := parseSourceURL(s.URL); err != nil {
		add("url", "url", err.Error())
	}
	for name, value := range s.Headers {
		if !validHeaderName(name) {
			add("headers", "invalid", fmt.Sprintf("%q is not a valid header name", name))
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			// The value is a secret: name the header only.
			add("headers", "invalid", fmt.Sprintf("the value of header %q holds a line break or NUL", name))
		}
	}
	if _, err := splitPath(s.RecordsPath); err != nil {
		add("records_path", "invalid", err.Error())
	}
	pg := s.Pagination
	need := func(field, value string) {
		if value == "" {
			add("pagination."+field, "required", fmt.Sprintf("pagination kind %s needs %s", pg.Kind, field))
		}
	}
	switch pg.Kind {
	case "", PaginateNone, PaginateLink:
	case PaginateCursor:
		need("cursor_param", pg.CursorParam)
		need("next_path", pg.NextPath)
		if _, err := splitPath(pg.NextPath); err != nil {
			add("pagination.next_path", "invalid", err.Error())
		}
	case PaginatePage:
		need("page_param", pg.PageParam)
	case PaginateOffset:
		need("offset_param", pg.OffsetParam)
	default:
		add("pagination.kind", "one_of", fmt.Sprintf("unknown pagination kind %q: use cursor, page, offset, link or none", pg.Kind))
	}
	if pg.PageSize < 0 {
		add("pagination.page_size", "min", "page_size must not be negative")
	}
	if pg.SizeParam != "" && pg.PageSize == 0 {
		add("pagination.page_size", "required", "size_param needs page_size")
	}
	if inc := s.Incremental; inc != nil {
		if inc.Field == "" && (inc.Param != "" || inc.Start != "") {
			add("incremental.field", "required", "incremental.field is required")
		}
		if _, err := splitPath(inc.Field); err != nil {
			add("incremental.field", "invalid", err.Error())
		}
	}
	if len(fe) > 0 {
		return &records.ValidationError{Fields: fe}
	}
	return nil
}

// Redacted answers the source with every header value replaced by
// "[redacted]", for showing a connector back: header values are
// credentials, and never leave the server once given.
func (s Source) Redacted() Source {
	if s.Headers != nil {
		h := make(map[string]string, len(s.Headers))
		for name := range s.Headers {
			h[name] = "[redacted]"
		}
		s.Headers = h
	}
	return s
}

// Start answers the checkpoint a new or reset connector begins at.
func (s Source) Start() Checkpoint {
	if s.Incremental == nil {
		return Checkpoint{}
	}
	return Checkpoint{Value: s.Incremental.Start}
}

// Field answers the dot path of the incremental field, "" when the source is
// not incremental.
func (s Source) Field() string {
	if s.Incremental == nil {
		return ""
	}
	return s.Incremental.Field
}

func parseSourceURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("the scheme must be http or https")
	case u.Hostname() == "":
		return nil, errors.New("the URL has no host")
	case u.User != nil:
		return nil, errors.New("the URL must not carry a user name or password: send credentials in headers, which are never shown back")
	}
	return u, nil
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return false
		}
	}
	return true
}

// Resolver looks a host name up; *net.Resolver satisfies it.
type Resolver = netguard.Resolver

// HTTPConfig configures an HTTPPoller.
type HTTPConfig struct {
	Source
	// AllowPrivate lets the source, and redirects, reach loopback, private,
	// link-local and shared addresses, for local testing. Cloud metadata,
	// multicast, unspecified and reserved addresses stay refused.
	AllowPrivate bool
	// OptInHint ends the message of a refused address; a host names its own
	// switch for AllowPrivate here (the reference server's flag). Default
	// the package's OptInHint.
	OptInHint string
	// Resolver resolves the source's host for Check; nil means
	// net.DefaultResolver. Connections are checked at dial time whatever it
	// answered.
	Resolver Resolver
	// Backoff says how 429, 5xx and network failures are retried.
	Backoff Backoff
	// MaxPageBytes limits the body of one page; default 32 MiB.
	MaxPageBytes int64
	// Timeout bounds one request, from connecting to reading the body;
	// default 1 min.
	Timeout time.Duration
	// UserAgent is sent unless Headers set one; default DefaultUserAgent.
	UserAgent string
	// Now answers the time, for Retry-After given as an HTTP date; nil means
	// time.Now.
	Now func() time.Time
}

// HTTPPoller is the Poller of an HTTP JSON API: it GETs a URL, takes the
// records from the answer at RecordsPath, and finds the next page as the
// source's Pagination says. Build it with NewHTTPPoller; it is safe for
// concurrent use.
type HTTPPoller struct {
	cfg    HTTPConfig
	base   *url.URL
	client *http.Client
	policy netguard.Policy
	recs   []string
	next   []string
}

var _ Poller = (*HTTPPoller)(nil)

// NewHTTPPoller checks cfg.Source (see Source.Validate) and answers its
// poller. A URL whose host is an IP address the policy refuses is refused
// here; host names are checked by Check and at every connection.
func NewHTTPPoller(cfg HTTPConfig) (*HTTPPoller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Pagination.Kind == "" {
		cfg.Pagination.Kind = PaginateNone
	}
	if cfg.MaxPageBytes <= 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OptInHint == "" {
		cfg.OptInHint = OptInHint
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	base, _ := parseSourceURL(cfg.URL)
	p := &HTTPPoller{cfg: cfg, base: base, policy: netguard.Policy{AllowPrivate: cfg.AllowPrivate}}
	if err := p.checkLiteral(base); err != nil {
		return nil, fmt.Errorf("connector: %w; %s", err, cfg.OptInHint)
	}
	p.recs, _ = splitPath(cfg.RecordsPath)
	p.next, _ = splitPath(cfg.Pagination.NextPath)
	p.client = &http.Client{
		Transport:     transport(cfg.AllowPrivate),
		CheckRedirect: p.checkRedirect,
	}
	return p, nil
}

// Check vets the source's URL as registration does: every address its host
// resolves to must be allowed. The answer wraps ErrBlockedAddress, with
// OptInHint in its message, when one is not.
func (c HTTPConfig) Check(ctx context.Context) error {
	if err := c.Validate(); err != nil {
		return err
	}
	err := netguard.Policy{AllowPrivate: c.AllowPrivate}.CheckURL(ctx, c.Resolver, c.URL)
	if errors.Is(err, ErrBlockedAddress) {
		hint := c.OptInHint
		if hint == "" {
			hint = OptInHint
		}
		return fmt.Errorf("connector: %w; %s", err, hint)
	}
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	return nil
}

// HTTPFactory answers the Factory of KindHTTP: it reads a Source from the
// connector's definition and makes its poller with the rest of opts.
func HTTPFactory(opts HTTPConfig) Factory {
	return func(def json.RawMessage) (Poller, error) {
		cfg := opts
		cfg.Source = Source{}
		if err := json.Unmarshal(def, &cfg.Source); err != nil {
			return nil, fmt.Errorf("connector: reading the definition: %w", err)
		}
		return NewHTTPPoller(cfg)
	}
}

// transports are shared by every poller of the same policy, so idle
// connections are reused across pages and runs and not leaked per poller.
var transports = [2]func() *http.Transport{
	sync.OnceValue(func() *http.Transport { return newTransport(netguard.Policy{}) }),
	sync.OnceValue(func() *http.Transport { return newTransport(netguard.Policy{AllowPrivate: true}) }),
}

func transport(allowPrivate bool) *http.Transport {
	if allowPrivate {
		return transports[1]()
	}
	return transports[0]()
}

// newTransport checks every connection's address right before connecting;
// proxies from the environment are ignored, since a proxy would connect on
// our behalf, unchecked.
func newTransport(p netguard.Policy) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           p.Dialer().DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// checkLiteral refuses a URL whose host is a refused IP address before any
// connection is attempted; names are left to the dialer.
func (p *HTTPPoller) checkLiteral(u *url.URL) error {
	if addr, err := netip.ParseAddr(u.Hostname()); err == nil {
		return p.policy.Check(addr)
	}
	return nil
}

// errRedirect marks a redirect that was not followed; it fails the page at
// once, since asking again would be redirected the same way.
var errRedirect = errors.New("redirect not followed")

// checkRedirect follows a redirect only to http or https, to an allowed
// address (checked again when dialling), at most maxRedirects times. A
// redirect to another origin carries none of the configured headers, which
// are credentials for the source's own origin.
func (p *HTTPPoller) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", errRedirect, maxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: to a %s URL", errRedirect, req.URL.Scheme)
	}
	if err := p.checkLiteral(req.URL); err != nil {
		return fmt.Errorf("%w: %w", errRedirect, err)
	}
	if !sameOrigin(req.URL, p.base) {
		for name := range p.cfg.Headers {
			req.Header.Del(name)
		}
	}
	return nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// Poll fetches one page, retrying 429, 5xx and network failures as
// cfg.Backoff says. A non-2xx answer fails with a *StatusError (inside a
// *RetryableError for 429 and 5xx).
func (p *HTTPPoller) Poll(ctx context.Context, req Request) (Page, error) {
	u, err := p.pageURL(req)
	if err != nil {
		return Page{}, fmt.Errorf("connector: %w", err)
	}
	page, err := retry(ctx, p.cfg.Backoff, func(ctx context.Context) (Page, error) {
		return p.fetch(ctx, u, req)
	})
	if err != nil {
		return Page{}, fmt.Errorf("connector: %w", err)
	}
	return page, nil
}

// pageURL answers the URL of the page req asks for.
func (p *HTTPPoller) pageURL(req Request) (*url.URL, error) {
	pg := p.cfg.Pagination
	if pg.Kind == PaginateLink && req.Cursor != "" {
		u, err := url.Parse(req.Cursor)
		if err != nil || !u.IsAbs() {
			return nil, fmt.Errorf("the cursor is not a next link")
		}
		if !sameOrigin(u, p.base) {
			return nil, fmt.Errorf("the next link leads away from %s://%s; links to another origin are not followed", p.base.Scheme, p.base.Host)
		}
		return u, nil
	}
	u := *p.base
	q := u.Query()
	switch pg.Kind {
	case PaginateCursor:
		if req.Cursor != "" {
			q.Set(pg.CursorParam, req.Cursor)
		}
	case PaginatePage:
		n, err := cursorNumber(req.Cursor, 1)
		if err != nil {
			return nil, err
		}
		q.Set(pg.PageParam, strconv.Itoa(n))
	case PaginateOffset:
		n, err := cursorNumber(req.Cursor, 0)
		if err != nil {
			return nil, err
		}
		q.Set(pg.OffsetParam, strconv.Itoa(n))
	}
	if pg.SizeParam != "" {
		q.Set(pg.SizeParam, strconv.Itoa(pg.PageSize))
	}
	if inc := p.cfg.Incremental; inc != nil && inc.Param != "" && req.Since != "" {
		q.Set(inc.Param, req.Since)
	}
	u.RawQuery = q.Encode()
	return &u, nil
}

func cursorNumber(cursor string, first int) (int, error) {
	if cursor == "" {
		return first, nil
	}
	n, err := strconv.Atoi(cursor)
	if err != nil || n < first {
		return 0, fmt.Errorf("the cursor %q is not a page number or offset", cursor)
	}
	return n, nil
}

// fetch makes one request for a page and reads the answer.
func (p *HTTPPoller) fetch(ctx context.Context, u *url.URL, req Request) (Page, error) {
	reqCtx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Page{}, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", p.cfg.UserAgent)
	for name, value := range p.cfg.Headers {
		hreq.Header.Set(name, value)
	}
	resp, err := p.client.Do(hreq)
	if err != nil {
		return Page{}, p.networkError(ctx, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Page{}, p.statusError(u, resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxPageBytes+1))
	if err != nil {
		return Page{}, &RetryableError{Err: fmt.Errorf("GET %s: reading the answer: %w", redact(u), err)}
	}
	if int64(len(body)) > p.cfg.MaxPageBytes {
		return Page{}, fmt.Errorf("GET %s: the page is larger than %d bytes", redact(u), p.cfg.MaxPageBytes)
	}
	page, err := p.parse(body, resp, req)
	if err != nil {
		ct := resp.Header.Get("Content-Type")
		if mt, _, _ := mime.ParseMediaType(ct); ct != "" && !strings.Contains(mt, "json") {
			err = fmt.Errorf("%w (Content-Type %s)", err, ct)
		}
		return Page{}, fmt.Errorf("GET %s: %w", redact(u), err)
	}
	return page, nil
}

// parse reads a page's records and next cursor from its answer.
func (p *HTTPPoller) parse(body []byte, resp *http.Response, req Request) (Page, error) {
	if !json.Valid(body) {
		return Page{}, errors.New("the answer is not JSON")
	}
	var page Page
	raw, ok, err := lookup(body, p.recs)
	if err != nil {
		return Page{}, fmt.Errorf("records_path %q: %w", p.cfg.RecordsPath, err)
	}
	if ok {
		if firstByte(raw) != '[' {
			if p.cfg.RecordsPath == "" {
				return Page{}, errors.New("the answer is not an array: set records_path to the member that holds the records")
			}
			return Page{}, fmt.Errorf("records_path %q is not an array", p.cfg.RecordsPath)
		}
		if err := json.Unmarshal(raw, &page.Records); err != nil {
			return Page{}, err
		}
	}
	if len(page.Records) == 0 {
		return page, nil
	}
	pg := p.cfg.Pagination
	switch pg.Kind {
	case PaginateCursor:
		v, ok, err := lookup(body, p.next)
		if err != nil {
			return Page{}, fmt.Errorf("next_path %q: %w", pg.NextPath, err)
		}
		if ok {
			if page.Next, err = scalar(v); err != nil {
				return Page{}, fmt.Errorf("next_path %q: %w", pg.NextPath, err)
			}
		}
		// A source answering the cursor it was given would loop forever.
		page.More = page.Next != "" && page.Next != req.Cursor
	case PaginatePage:
		n, _ := cursorNumber(req.Cursor, 1)
		page.Next, page.More = strconv.Itoa(n+1), true
	case PaginateOffset:
		n, _ := cursorNumber(req.Cursor, 0)
		page.Next, page.More = strconv.Itoa(n+len(page.Records)), true
	case PaginateLink:
		target, ok := linkNext(resp.Header.Values("Link"))
		if !ok {
			break
		}
		next, err := resp.Request.URL.Parse(target)
		if err != nil {
			return Page{}, fmt.Errorf("the next link %q is not a URL", target)
		}
		if next.Scheme != "http" && next.Scheme != "https" || !sameOrigin(next, p.base) {
			return Page{}, fmt.Errorf("the next link leads away from %s://%s; links to another origin are not followed", p.base.Scheme, p.base.Host)
		}
		page.Next = next.String()
		page.More = page.Next != resp.Request.URL.String()
	}
	if !page.More {
		page.Next = ""
	}
	return page, nil
}

// StatusError is an answer other than 2xx. Body is its first 4 KiB, as valid
// UTF-8, with the values of the configured headers blotted out in case the
// source echoes them.
type StatusError struct {
	StatusCode int
	Status     string
	URL        string // without its query, which may hold credentials
	Body       string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("GET %s: %s", e.URL, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func (p *HTTPPoller) statusError(u *url.URL, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	body := strings.ToValidUTF8(string(b), "\uFFFD")
	for _, v := range p.cfg.Headers {
		if len(v) >= 4 {
			body = strings.ReplaceAll(body, v, "[redacted]")
		}
	}
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(resp.StatusCode)
	}
	err := &StatusError{StatusCode: resp.StatusCode, Status: status, URL: redact(u), Body: body}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return &RetryableError{Err: err, After: retryAfter(resp.Header.Get("Retry-After"), p.cfg.Now())}
	}
	return err
}

// networkError classifies a failed request: a refused address or redirect,
// or the caller's context ending, fails at once; other failures (connection
// refused or reset, the request's own timeout) are worth retrying.
func (p *HTTPPoller) networkError(ctx context.Context, u *url.URL, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	err = fmt.Errorf("GET %s: %w", redact(u), err)
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return fmt.Errorf("%w; %s", err, p.cfg.OptInHint)
	case errors.Is(err, errRedirect), ctx.Err() != nil:
		return err
	}
	return &RetryableError{Err: err}
}

// retryAfter reads a Retry-After value, seconds or an HTTP date; zero when it
// is absent, malformed or in the past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact answers a URL for messages: without its query, which may carry an
// API key or signature, and without user information.
func redact(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment = nil, "", false, ""
	return c.String()
}
