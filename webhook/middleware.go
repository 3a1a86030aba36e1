package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// DefaultMaxBodyBytes bounds the body Middleware reads when
// Verifier.MaxBodyBytes is zero.
const DefaultMaxBodyBytes int64 = 1 << 20

// Middleware returns receiver middleware that reads the request body (at
// most v.MaxBodyBytes), verifies its signature with v, and passes verified
// requests on with the body restored, so the next handler reads exactly the
// bytes that were verified.
//
// Failures are answered with an RFC 9457 problem document and never reach
// the next handler: 400 with a code of missing_signature, invalid_header,
// timestamp_out_of_range or invalid_signature; 413 (body_too_large) for a
// body over the limit; 500 (receiver_misconfigured) when no secret is usable.
func Middleware(v Verifier) func(http.Handler) http.Handler {
	limit := v.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			_ = r.Body.Close()
			if err != nil {
				writeProblem(w, http.StatusBadRequest, "unreadable_body", "The request body could not be read.")
				return
			}
			if int64(len(body)) > limit {
				writeProblem(w, http.StatusRequestEntityTooLarge, "body_too_large",
					"The request body exceeds "+strconv.FormatInt(limit, 10)+" bytes.")
				return
			}
			if err := v.Verify(r.Header, body); err != nil {
				status, code := problemFor(err)
				writeProblem(w, status, code, err.Error())
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(body)), nil
			}
			next.ServeHTTP(w, r)
		})
	}
}

func problemFor(err error) (status int, code string) {
	switch {
	case errors.Is(err, ErrMissingSignature):
		return http.StatusBadRequest, "missing_signature"
	case errors.Is(err, ErrInvalidHeader):
		return http.StatusBadRequest, "invalid_header"
	case errors.Is(err, ErrTimestampOutOfRange):
		return http.StatusBadRequest, "timestamp_out_of_range"
	case errors.Is(err, ErrInvalidSignature):
		return http.StatusBadRequest, "invalid_signature"
	default:
		return http.StatusInternalServerError, "receiver_misconfigured"
	}
}

// writeProblem writes a problem document. Verify's messages are fixed texts
// and numbers, never header contents, so detail is safe to return.
func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	if status == http.StatusInternalServerError {
		// Configuration problems are the receiver's business, not the
		// sender's.
		detail = "The receiver cannot verify signatures."
	}
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, code, detail})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
