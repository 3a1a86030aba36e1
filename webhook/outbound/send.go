package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smartlite/crmkit/records"
)

// Header names deliveries carry besides the signatures.
const (
	HeaderEvent    = "X-SmartLite-Event"
	HeaderDelivery = "X-SmartLite-Delivery"
)

// maxLoggedBody is how much of an answer's body the log keeps.
const maxLoggedBody = 4 << 10

// maxDrain bounds what is read past the logged part so the connection can be
// reused; a longer body costs a new connection, not a stuck worker.
const maxDrain = 64 << 10

// newTransport answers the transport deliveries use: every connection's
// address is checked by the policy right before connecting, proxies from the
// environment are ignored (they would dial on our behalf, unchecked), and
// idle connections are kept per host so a busy endpoint costs no handshakes.
func newTransport(p AddressPolicy) *http.Transport {
	dialer := p.Dialer()
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 0, // the per-attempt context bounds the whole exchange
	}
}

// attempt signs and sends ev to e once, and answers what happened. It fails
// only when the delivery could not even be prepared.
func (s *Service) attempt(ctx context.Context, e *Endpoint, ev *records.Event, deliveryID, trigger string) (Attempt, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return Attempt{}, fmt.Errorf("outbound: encoding event %s: %w", ev.ID, err)
	}
	at := s.now()
	h, err := s.signer.Sign(e.Secrets(at), ev.ID, at, body)
	if err != nil {
		return Attempt{}, fmt.Errorf("outbound: signing for endpoint %s: %w", e.ID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return Attempt{At: at, Trigger: trigger, Error: "invalid endpoint URL", ErrorKind: ErrorKindNetwork}, nil
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set(HeaderEvent, ev.Type)
	req.Header.Set(HeaderDelivery, deliveryID)
	// The event id makes the POST idempotent for Go's transport, which then
	// sends it again at once, on a fresh connection, when a kept-alive
	// connection the receiver had closed fails before the request was
	// written; without it that race is a spurious failed attempt.
	// Receivers deduplicate by webhook-id, the same value.
	req.Header["Idempotency-Key"] = []string{ev.ID}

	a := Attempt{At: at, Trigger: trigger}
	start := time.Now()
	resp, err := s.http.Do(req)
	if err != nil {
		a.DurationMS = time.Since(start).Milliseconds()
		a.ErrorKind, a.Error = classify(err)
		return a, nil
	}
	logged, _ := io.ReadAll(io.LimitReader(resp.Body, maxLoggedBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	_ = resp.Body.Close()
	a.DurationMS = time.Since(start).Milliseconds()
	a.StatusCode = resp.StatusCode
	a.Headers = resp.Header
	a.Body = loggable(logged)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.ErrorKind = ErrorKindRedirect
		a.Error = fmt.Sprintf("redirect (%d) not followed", resp.StatusCode)
		if loc := resp.Header.Get("Location"); loc != "" {
			a.Error += " to " + truncate(loc, 200)
		}
	default:
		a.ErrorKind = ErrorKindStatus
		a.Error = "unexpected status " + resp.Status
	}
	return a, nil
}

// loggable makes a body storable as text in either database: valid UTF-8,
// without NUL bytes (which Postgres text refuses).
func loggable(b []byte) string {
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\x00", "\uFFFD")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// classify names the kind of a network failure and describes it. The
// description never quotes request headers, which hold signatures.
func classify(err error) (kind, msg string) {
	var (
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		unkAuth  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
		netErr   net.Error
	)
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return ErrorKindBlocked, unwrapURLError(err) + "; " + OptInHint
	case errors.As(err, &dnsErr):
		return ErrorKindDNS, "DNS lookup failed: " + dnsErr.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrorKindRefused, "connection refused"
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alertErr),
		errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &invErr):
		return ErrorKindTLS, "TLS: " + unwrapURLError(err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ErrorKindTimeout, "timed out"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return ErrorKindConnection, "connection closed before an answer: " + unwrapURLError(err)
	}
	return ErrorKindNetwork, unwrapURLError(err)
}

// unwrapURLError drops the "Post \"https://…\":" prefix net/http adds; the
// URL is on the endpoint already.
func unwrapURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// retryAfter answers the wait a 429 or 503 answer asked for, capped at a
// day; 0 when there is none or the header cannot be read.
func retryAfter(a Attempt) time.Duration {
	if a.StatusCode != http.StatusTooManyRequests && a.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	v := strings.TrimSpace(a.Headers.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), maxRetryAfter)
}
