package integration

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// loggedWriter remembers what the access log reports about a response.
type loggedWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	keyID  string
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs one line per request: method, route pattern (never the raw
// path, which can hold ids of other systems, and never the query, which can
// hold anything), status, duration and the key id when a key was verified.
// Neither the key nor any header is logged.
func (s *Service) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggedWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		if lw.status == 0 {
			lw.status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.Request(routeOf(r.Pattern), r.Method, lw.status, d)
		level := slog.LevelInfo
		if lw.status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(r.Context(), level, "http request",
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.Int("status", lw.status),
			slog.Int64("bytes", lw.bytes),
			slog.Duration("duration", d),
			slog.String("key_id", lw.keyID),
		)
	})
}

// noteKey tells the access log which key a request carried; it runs right
// after Authenticate, so even a 403 or 429 is logged with the key id.
func noteKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lw, ok := w.(*loggedWriter); ok {
			lw.keyID = keyIDOf(r)
		}
		next.ServeHTTP(w, r)
	})
}

// routeOf is a mux pattern without its method: the route label of metrics.
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return pattern[i+1:]
	}
	return pattern
}
