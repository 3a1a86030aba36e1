package outbound_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
	"github.com/smartlite/crmkit/webhook/outbound"
)

func ptr[T any](v T) *T { return &v }

func TestFanoutToMatchingEndpointsOnly(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true})
		rv := newReceiver(t)
		type want struct{ closed, negotiation, account int }
		endpoints := []struct {
			name string
			in   outbound.EndpointInput
			want want
		}{
			{"closed-won", outbound.EndpointInput{Events: []string{"record.updated"}, Objects: []string{"opportunity"},
				Condition: &outbound.Condition{Field: "stage", ChangedTo: "Closed Won"}}, want{1, 0, 0}},
			{"everything", outbound.EndpointInput{Events: []string{"*"}}, want{1, 1, 1}},
			{"created", outbound.EndpointInput{Events: []string{"record.created"}}, want{0, 0, 1}},
			{"accounts", outbound.EndpointInput{Events: []string{"record.*"}, Objects: []string{"account"}}, want{0, 0, 1}},
			{"deleted", outbound.EndpointInput{Events: []string{"record.deleted"}}, want{0, 0, 0}},
			{"disabled", outbound.EndpointInput{Events: []string{"*"}, Enabled: ptr(false)}, want{0, 0, 0}},
		}
		ids := map[string]string{}
		for _, ep := range endpoints {
			ep.in.URL = rv.URL + "/" + ep.name
			e, _ := h.endpoint(ep.in)
			ids[ep.name] = e.ID
		}
		closed := closedWon(h.ws)
		negotiation := opportunityEvent(h.ws, records.EventUpdated, map[string]records.Change{"stage": {From: "Qualification", To: "Negotiation"}})
		account := &records.Event{Workspace: h.ws, Type: records.EventCreated, Object: "account",
			Record: &records.Record{ID: records.NewID("rec"), Object: "account", Version: 1, Fields: records.Fields{"name": "Acme"}},
			Source: records.SourceImport, Actor: records.Actor{Kind: "user", ID: "u1"}}
		h.emit(closed)
		h.emit(negotiation, account)
		h.waitFanout()

		for _, ep := range endpoints {
			t.Run(ep.name, func(t *testing.T) {
				wantEvents := map[string]bool{}
				if ep.want.closed > 0 {
					wantEvents[closed.ID] = true
				}
				if ep.want.negotiation > 0 {
					wantEvents[negotiation.ID] = true
				}
				if ep.want.account > 0 {
					wantEvents[account.ID] = true
				}
				require.Eventually(t, func() bool {
					return len(rv.byPath("/"+ep.name)) >= len(wantEvents)
				}, waitTimeout, 20*time.Millisecond)
				ds := h.deliveries(ids[ep.name])
				require.Len(t, ds, len(wantEvents), "one delivery per matching event, no more")
				for _, d := range ds {
					require.True(t, wantEvents[d.EventID], "unexpected delivery of %s", d.EventID)
				}
				got := map[string]bool{}
				for _, r := range rv.byPath("/" + ep.name) {
					got[r.header.Get("webhook-id")] = true
				}
				require.Equal(t, wantEvents, got)
			})
		}
	})
}

// refSmartLite computes X-SmartLite-Signature in the format package webhook
// and the README document: HMAC-SHA256 keyed with the whole secret string
// over "<t>.<body>", in hex.
func refSmartLite(secret, t string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t + "." + string(body)))
	return hex.EncodeToString(m.Sum(nil))
}

// refStandard computes a Standard Webhooks signature from the published
// specification: the secret's part after "whsec_" is base64-decoded into
// the key; the signed content is "<msg_id>.<timestamp>.<payload>"; the
// signature is base64 of the HMAC-SHA256, sent as "v1,<sig>".
func refStandard(t *testing.T, secret, id, ts string, body []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestPayloadAndHeaders(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true})
		rv := newReceiver(t)
		e, secret := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"record.updated"}})
		require.True(t, strings.HasPrefix(secret, "whsec_"))
		ev := closedWon(h.ws)
		h.emit(ev)
		d := h.waitDelivery(e.ID, outbound.StatusSucceeded)
		reqs := rv.got()
		require.Len(t, reqs, 1)
		r := reqs[0]

		stored, err := h.st.GetEvent(context.Background(), h.ws, ev.ID)
		require.NoError(t, err)
		want, err := json.Marshal(stored)
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(r.body))
		require.Equal(t, string(want), string(r.body), "the payload is the event's JSON, byte for byte")

		var payload struct {
			ID, Type, CreatedAt, WorkspaceID string `json:"-"`
			Data                             struct {
				Object string `json:"object"`
				Record struct {
					ID      string         `json:"id"`
					Version int64          `json:"version"`
					Fields  map[string]any `json:"fields"`
				} `json:"record"`
				Changes map[string]struct{ From, To any } `json:"changes"`
				Source  string                            `json:"source"`
				Actor   struct{ Kind, ID string }         `json:"actor"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.body, &payload))
		var top map[string]any
		require.NoError(t, json.Unmarshal(r.body, &top))
		require.Equal(t, ev.ID, top["id"])
		require.Equal(t, "record.updated", top["type"])
		require.Equal(t, h.ws, top["workspace_id"])
		_, err = time.Parse(time.RFC3339Nano, top["created_at"].(string))
		require.NoError(t, err)
		require.Equal(t, "opportunity", payload.Data.Object)
		require.Equal(t, ev.Record.ID, payload.Data.Record.ID)
		require.Equal(t, int64(2), payload.Data.Record.Version)
		require.Equal(t, "Closed Won", payload.Data.Changes["stage"].To)
		require.Equal(t, "Negotiation", payload.Data.Changes["stage"].From)
		require.Equal(t, "api", payload.Data.Source)
		require.Equal(t, "key_test", payload.Data.Actor.ID)

		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Equal(t, outbound.DefaultUserAgent, r.header.Get("User-Agent"))
		require.Equal(t, "record.updated", r.header.Get("X-SmartLite-Event"))
		require.Equal(t, d.ID, r.header.Get("X-SmartLite-Delivery"))
		require.Equal(t, ev.ID, r.header.Get("webhook-id"))

		ts := r.header.Get("webhook-timestamp")
		sec, err := strconv.ParseInt(ts, 10, 64)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), time.Unix(sec, 0), time.Minute)
		require.Equal(t, "t="+ts+",v1="+refSmartLite(secret, ts, r.body), r.header.Get("X-SmartLite-Signature"))
		require.Equal(t, refStandard(t, secret, ev.ID, ts, r.body), r.header.Get("webhook-signature"))
		require.NoError(t, webhook.Verify(r.header, r.body, []string{secret}))

		require.Len(t, d.Attempts, 1)
		a := d.Attempts[0]
		require.Equal(t, 1, a.Number)
		require.Equal(t, 200, a.StatusCode)
		require.Equal(t, outbound.TriggerScheduled, a.Trigger)
		require.Empty(t, a.Error)
	})
}

func TestReceiverDownThenBack(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		// Three quick retries while the receiver is down, then room to bring
		// it back before the next.
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true,
			Schedule: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 2 * time.Second, 2 * time.Second, 2 * time.Second}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		e, _ := h.endpoint(outbound.EndpointInput{URL: "http://" + addr + "/hook", Events: []string{"*"}})
		h.emit(closedWon(h.ws))
		require.Eventually(t, func() bool {
			ds := h.deliveries(e.ID)
			return len(ds) == 1 && ds[0].AttemptCount >= 3
		}, waitTimeout, 20*time.Millisecond)

		ln, err = net.Listen("tcp", addr)
		require.NoError(t, err)
		var hits int
		var mu sync.Mutex
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			mu.Lock()
			hits++
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
		srv.Listener = ln
		srv.Start()
		defer srv.Close()

		d := h.waitDelivery(e.ID, outbound.StatusSucceeded)
		require.GreaterOrEqual(t, len(d.Attempts), 4)
		last := d.Attempts[len(d.Attempts)-1]
		require.Equal(t, 204, last.StatusCode)
		for i, a := range d.Attempts[:len(d.Attempts)-1] {
			require.Equal(t, i+1, a.Number)
			require.Equal(t, outbound.ErrorKindRefused, a.ErrorKind, "attempt %d", a.Number)
			require.Zero(t, a.StatusCode)
			require.Equal(t, outbound.TriggerScheduled, a.Trigger)
		}
		ep, err := h.svc.Get(context.Background(), h.ws, e.ID)
		require.NoError(t, err)
		require.Nil(t, ep.FailingSince, "a success ends the failing period")
		mu.Lock()
		require.Equal(t, 1, hits)
		mu.Unlock()
	})
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, Schedule: []time.Duration{50 * time.Millisecond}})
		rv := newReceiver(t)
		rv.setRespond(func(_ int, w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hook" {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		h.emit(closedWon(h.ws))
		d := h.waitDelivery(e.ID, outbound.StatusFailed)
		require.Len(t, d.Attempts, 2, "two attempts: the first and one retry")
		for _, a := range d.Attempts {
			require.Equal(t, http.StatusFound, a.StatusCode)
			require.Equal(t, outbound.ErrorKindRedirect, a.ErrorKind)
			require.Contains(t, a.Error, "/elsewhere")
			require.Equal(t, "/elsewhere", a.Headers.Get("Location"))
		}
		require.Empty(t, rv.byPath("/elsewhere"))
	})
}

// TestRetryWaitIsScheduled checks the time River is given for the retry of
// a failed attempt, against the attempt's own time: the receiver's
// Retry-After on 429 and 503, and the schedule's wait otherwise. The waits
// are long, so no retry runs while the test looks.
func TestRetryWaitIsScheduled(t *testing.T) {
	const schedule = time.Hour
	retryDate := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Second)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		// want answers when the retry is due, given the failed attempt's time.
		want func(at time.Time) time.Time
	}{
		{"429 Retry-After seconds", http.StatusTooManyRequests, "120", func(at time.Time) time.Time { return at.Add(2 * time.Minute) }},
		{"503 Retry-After seconds", http.StatusServiceUnavailable, "120", func(at time.Time) time.Time { return at.Add(2 * time.Minute) }},
		{"503 Retry-After date", http.StatusServiceUnavailable, retryDate.Format(http.TimeFormat), func(time.Time) time.Time { return retryDate }},
		{"503 without Retry-After", http.StatusServiceUnavailable, "", func(at time.Time) time.Time { return at.Add(schedule) }},
		{"500 ignores Retry-After", http.StatusInternalServerError, "120", func(at time.Time) time.Time { return at.Add(schedule) }},
		{"429 unreadable Retry-After", http.StatusTooManyRequests, "soon", func(at time.Time) time.Time { return at.Add(schedule) }},
	}
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, Schedule: []time.Duration{schedule}})
		rv := newReceiver(t)
		rv.setRespond(func(_ int, w http.ResponseWriter, r *http.Request) {
			tc := tests[must(strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/")))]
			if tc.retryAfter != "" {
				w.Header().Set("Retry-After", tc.retryAfter)
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(`{"error":"slow down"}`))
		})
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/" + strconv.Itoa(i), Events: []string{"*"}})
				h.emit(closedWon(h.ws))
				d := h.waitDelivery(e.ID, outbound.StatusPending)
				require.Len(t, d.Attempts, 1)
				a := d.Attempts[0]
				require.Equal(t, tc.status, a.StatusCode)
				require.Equal(t, tc.retryAfter, a.Headers.Get("Retry-After"))
				require.Equal(t, `{"error":"slow down"}`, a.Body)
				due := tc.want(a.At)
				require.NotNil(t, d.NextAttemptAt)
				require.WithinDuration(t, due, *d.NextAttemptAt, time.Second, "the log's next attempt")

				// The retry's job, once River has taken it up and put it
				// back to wait, is scheduled for that time: no earlier,
				// and not much later than the attempt took to be stored.
				var job *rivertype.JobRow
				require.Eventually(t, func() bool {
					job = h.deliverJob(d.ID)
					return job != nil && job.AttemptedAt != nil && job.State != rivertype.JobStateRunning
				}, waitTimeout, 20*time.Millisecond)
				require.NotEqual(t, rivertype.JobStateCompleted, job.State)
				require.False(t, job.ScheduledAt.Before(due.Add(-time.Millisecond)),
					"scheduled at %s, before %s", job.ScheduledAt, due)
				require.True(t, job.ScheduledAt.Before(due.Add(waitTimeout)), "scheduled at %s, long after %s", job.ScheduledAt, due)
				require.Len(t, rv.byPath("/"+strconv.Itoa(i)), 1, "no retry yet")
			})
		}
	})
}

// TestLateSuccessIsATimeout: a receiver that answers 200 only after the
// attempt's timeout has passed has failed the attempt, logged as a timeout.
func TestLateSuccessIsATimeout(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, Timeout: 50 * time.Millisecond,
			Schedule: []time.Duration{time.Hour}})
		rv := newReceiver(t)
		answered := make(chan struct{})
		rv.setRespond(func(_ int, w http.ResponseWriter, r *http.Request) {
			// Answer once the sender has given up on the request, so the
			// answer comes after the timeout whatever the machine's load.
			select {
			case <-r.Context().Done():
			case <-time.After(waitTimeout):
			}
			w.WriteHeader(http.StatusOK)
			close(answered)
		})
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		h.emit(closedWon(h.ws))
		d := h.waitDelivery(e.ID, outbound.StatusPending)
		<-answered
		require.Len(t, d.Attempts, 1)
		a := d.Attempts[0]
		require.Equal(t, outbound.ErrorKindTimeout, a.ErrorKind)
		require.Equal(t, "timed out", a.Error)
		require.Zero(t, a.StatusCode, "the late answer is not logged as the attempt's status")
		require.NotNil(t, d.NextAttemptAt, "a retry is due")
		ep, err := h.svc.Get(context.Background(), h.ws, e.ID)
		require.NoError(t, err)
		require.NotNil(t, ep.FailingSince, "the endpoint is failing")
	})
}

func TestGoneDisablesEndpoint(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true})
		rv := newReceiver(t)
		rv.setRespond(func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		h.emit(closedWon(h.ws))
		d := h.waitDelivery(e.ID, outbound.StatusFailed)
		require.Len(t, d.Attempts, 1, "410 is final: no retry")
		ep, err := h.svc.Get(context.Background(), h.ws, e.ID)
		require.NoError(t, err)
		require.False(t, ep.Enabled)
		require.NotNil(t, ep.DisabledAt)
		require.Contains(t, ep.DisabledReason, "410")
		require.Contains(t, h.logs.String(), `"event":"webhook.endpoint_disabled"`)

		h.emit(closedWon(h.ws))
		h.waitFanout()
		require.Len(t, h.deliveries(e.ID), 1, "a disabled endpoint gets no new deliveries")

		// Enabling it again clears the disabled state.
		ep, err = h.svc.Update(context.Background(), h.ws, e.ID, func(in *outbound.EndpointInput) error {
			in.Enabled = ptr(true)
			return nil
		})
		require.NoError(t, err)
		require.True(t, ep.Enabled)
		require.Nil(t, ep.DisabledAt)
		require.Empty(t, ep.DisabledReason)
	})
}

func TestDisabledAfterFailingPeriod(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, DisableAfter: 5 * 24 * time.Hour})
		rv := newReceiver(t)
		// The first attempt fails at T; while it is in flight six days pass,
		// so the retry fails at T+6d, past the disable period.
		rv.setRespond(func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				h.clock.Advance(6 * 24 * time.Hour)
			}
			w.WriteHeader(http.StatusInternalServerError)
		})
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		h.emit(closedWon(h.ws))
		d := h.waitDelivery(e.ID, outbound.StatusFailed)
		require.Len(t, d.Attempts, 2, "disabled at the second failure, before retries ran out")
		ep, err := h.svc.Get(context.Background(), h.ws, e.ID)
		require.NoError(t, err)
		require.False(t, ep.Enabled)
		require.Contains(t, ep.DisabledReason, "failing without a success since")
		logs := h.logs.String()
		require.Contains(t, logs, `"event":"webhook.endpoint_disabled"`)
		require.Contains(t, logs, e.ID)
	})
}

func TestRedeliverAndReplay(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, Schedule: []time.Duration{50 * time.Millisecond}})
		rv := newReceiver(t)
		var up sync.Map
		rv.setRespond(func(_ int, w http.ResponseWriter, _ *http.Request) {
			if _, ok := up.Load("up"); ok {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		})
		start := time.Now().Add(-time.Minute)
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		first, second := closedWon(h.ws), closedWon(h.ws)
		h.emit(first)
		h.emit(second)
		require.Eventually(t, func() bool {
			ds := h.deliveries(e.ID)
			return len(ds) == 2 && ds[0].Status == outbound.StatusFailed && ds[1].Status == outbound.StatusFailed
		}, waitTimeout, 20*time.Millisecond)
		failed, err := h.svc.Deliveries(ctx, outbound.DeliveryQuery{Workspace: h.ws, Status: outbound.StatusFailed, Limit: 10})
		require.NoError(t, err)
		require.Len(t, failed, 2)
		up.Store("up", true)

		// Redeliver one by hand.
		byEvent := map[string]*outbound.Delivery{}
		for _, d := range failed {
			byEvent[d.EventID] = d
		}
		d, err := h.svc.Redeliver(ctx, h.ws, byEvent[first.ID].ID)
		require.NoError(t, err)
		require.Equal(t, outbound.StatusPending, d.Status)
		require.Eventually(t, func() bool {
			d, err = h.svc.Delivery(ctx, h.ws, byEvent[first.ID].ID)
			return err == nil && d.Status == outbound.StatusSucceeded
		}, waitTimeout, 20*time.Millisecond)
		require.Len(t, d.Attempts, 3)
		require.Equal(t, outbound.TriggerManual, d.Attempts[2].Trigger)
		require.Equal(t, 200, d.Attempts[2].StatusCode)

		// Replay everything failed since a time: only the other one is left.
		n, err := h.svc.Replay(ctx, h.ws, start, "")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Eventually(t, func() bool {
			d, err = h.svc.Delivery(ctx, h.ws, byEvent[second.ID].ID)
			return err == nil && d.Status == outbound.StatusSucceeded
		}, waitTimeout, 20*time.Millisecond)
		require.Equal(t, outbound.TriggerReplay, d.Attempts[len(d.Attempts)-1].Trigger)
		n, err = h.svc.Replay(ctx, h.ws, start, e.ID)
		require.NoError(t, err)
		require.Zero(t, n)

		_, err = h.svc.Redeliver(ctx, "ws_other", d.ID)
		require.ErrorIs(t, err, records.ErrNotFound)
	})
}

// TestRetentionPrunedByJob: the prune runs as River's periodic job (every
// 100 ms here) and removes finished deliveries older than the retention
// period with their attempts, keeping recent ones and old pending ones.
func TestRetentionPrunedByJob(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, Retention: 7 * 24 * time.Hour,
			PruneInterval: 100 * time.Millisecond, Schedule: []time.Duration{time.Hour}, DisableAfter: 365 * 24 * time.Hour})
		rv := newReceiver(t)
		rv.setRespond(func(_ int, w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/gone":
				w.WriteHeader(http.StatusGone)
			case "/down":
				w.WriteHeader(http.StatusInternalServerError)
			default:
				w.WriteHeader(http.StatusOK)
			}
		})
		ok, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/ok", Events: []string{"*"}})
		gone, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/gone", Events: []string{"*"}})
		down, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/down", Events: []string{"*"}})

		// Eight days ago: one delivery succeeded, one failed for good, one
		// is still waiting for its retry.
		h.emit(closedWon(h.ws))
		oldSucceeded := h.waitDelivery(ok.ID, outbound.StatusSucceeded)
		oldFailed := h.waitDelivery(gone.ID, outbound.StatusFailed)
		oldPending := h.waitDelivery(down.ID, outbound.StatusPending)
		// The 410 disables its endpoint in a write of its own after the
		// failed delivery is logged; the recent event must find it disabled,
		// or it would get a recent delivery that is rightly kept.
		require.Eventually(t, func() bool {
			e, err := h.svc.Get(ctx, h.ws, gone.ID)
			return err == nil && !e.Enabled
		}, waitTimeout, 20*time.Millisecond, "the 410 disables the endpoint")
		h.clock.Advance(8 * 24 * time.Hour)
		// Today: a recent success and a recent pending one. The prune job
		// may already be removing the old ones meanwhile.
		recent := closedWon(h.ws)
		h.emit(recent)
		var recentSucceeded, recentPending *outbound.Delivery
		require.Eventually(t, func() bool {
			for _, d := range h.deliveries(ok.ID) {
				if d.EventID == recent.ID && d.Status == outbound.StatusSucceeded {
					recentSucceeded = d
				}
			}
			for _, d := range h.deliveries(down.ID) {
				if d.EventID == recent.ID && d.AttemptCount == 1 {
					recentPending = d
				}
			}
			return recentSucceeded != nil && recentPending != nil
		}, waitTimeout, 20*time.Millisecond)
		require.Equal(t, outbound.StatusPending, recentPending.Status)

		// Wait for a prune job that started after all of the above.
		since := time.Now()
		require.Eventually(t, func() bool {
			res, err := h.client.JobList(ctx, river.NewJobListParams().Kinds(outbound.PruneArgs{}.Kind()).
				States(rivertype.JobStateCompleted).First(10_000))
			if err != nil {
				return false
			}
			for _, j := range res.Jobs {
				if j.AttemptedAt != nil && j.AttemptedAt.After(since) {
					return true
				}
			}
			return false
		}, waitTimeout, 20*time.Millisecond, "no prune job ran")

		ids := func(ds []*outbound.Delivery) []string {
			var out []string
			for _, d := range ds {
				out = append(out, d.ID)
			}
			return out
		}
		require.Equal(t, []string{recentSucceeded.ID}, ids(h.deliveries(ok.ID)), "the old success is pruned, the recent one kept")
		require.Empty(t, h.deliveries(gone.ID), "the old failure is pruned")
		require.Equal(t, []string{recentPending.ID, oldPending.ID}, ids(h.deliveries(down.ID)), "pending deliveries are kept, however old")
		for _, id := range []string{oldSucceeded.ID, oldFailed.ID} {
			_, err := h.svc.Delivery(ctx, h.ws, id)
			require.ErrorIs(t, err, records.ErrNotFound)
			var attempts int
			require.NoError(t, h.st.DB().NewRaw("SELECT count(*) FROM webhook_attempts WHERE delivery_id = ?", id).Scan(ctx, &attempts))
			require.Zero(t, attempts, "the pruned delivery's attempts go with it")
		}
		require.Contains(t, h.logs.String(), "webhook deliveries pruned")
	})
}

// TestLoggedBodyIsCut: the log keeps exactly the first 4 KiB of an answer's
// body.
func TestLoggedBodyIsCut(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true})
		rv := newReceiver(t)
		// Every line differs, so any other cut would show.
		var body strings.Builder
		for i := 0; body.Len() < 10<<10; i++ {
			fmt.Fprintf(&body, "line %05d of the answer\n", i)
		}
		rv.setRespond(func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(body.String()))
		})
		e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		h.emit(closedWon(h.ws))
		d := h.waitDelivery(e.ID, outbound.StatusSucceeded)
		d, err := h.svc.Delivery(context.Background(), h.ws, d.ID)
		require.NoError(t, err)
		require.Len(t, d.Attempts, 1)
		a := d.Attempts[0]
		require.Len(t, a.Body, 4096)
		require.Equal(t, body.String()[:4096], a.Body)
		require.Equal(t, "text/plain", a.Headers.Get("Content-Type"))
	})
}

// TestNetworkErrorsClassified: attempts that get no answer log why, by
// kind. A timeout is TestLateSuccessIsATimeout's case.
func TestNetworkErrorsClassified(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, Schedule: []time.Duration{time.Hour}})

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closedAddr := ln.Addr().String()
		require.NoError(t, ln.Close())

		// A TLS server whose certificate nobody trusts; its handshake
		// complaints stay out of the test's output.
		untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		untrusted.Config.ErrorLog = log.New(io.Discard, "", 0)
		untrusted.StartTLS()
		t.Cleanup(untrusted.Close)

		tests := []struct {
			name, url, kind, msg string
		}{
			{"refused", "http://" + closedAddr + "/hook", outbound.ErrorKindRefused, "connection refused"},
			{"untrusted certificate", untrusted.URL + "/hook", outbound.ErrorKindTLS, "certificate signed by unknown authority"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e, _ := h.endpoint(outbound.EndpointInput{URL: tc.url, Events: []string{"*"}})
				h.emit(closedWon(h.ws))
				d := h.waitDelivery(e.ID, outbound.StatusPending)
				require.Len(t, d.Attempts, 1)
				a := d.Attempts[0]
				require.Equal(t, tc.kind, a.ErrorKind, "error: %s", a.Error)
				require.Contains(t, a.Error, tc.msg)
				require.Zero(t, a.StatusCode)
				require.Empty(t, a.Body)
			})
		}
	})
}

// TestDNSErrorClassified: a host name that does not resolve is logged as a
// DNS failure. Deliveries resolve through the system resolver, which may
// send a query off the machine; here the transport's dialer resolves with
// Go's resolver whose connection to a DNS server always fails, so the
// lookup fails on the machine with the *net.DNSError a failed lookup gives.
func TestDNSErrorClassified(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		var queries sync.Map
		resolver := &net.Resolver{PreferGo: true, Dial: func(_ context.Context, network, address string) (net.Conn, error) {
			queries.Store(network+" "+address, true)
			return nil, errors.New("no DNS server in tests")
		}}
		dialer := &net.Dialer{Resolver: resolver}
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true, Schedule: []time.Duration{time.Hour},
			// Registration resolves through this table, delivery through
			// the failing resolver above.
			Resolver:  fakeResolver{"hooks.crmkit.invalid": {netip.MustParseAddr("127.0.0.1")}},
			Transport: &http.Transport{DialContext: dialer.DialContext}})
		e, _ := h.endpoint(outbound.EndpointInput{URL: "http://hooks.crmkit.invalid/hook", Events: []string{"*"}})
		h.emit(closedWon(h.ws))
		d := h.waitDelivery(e.ID, outbound.StatusPending)
		require.Len(t, d.Attempts, 1)
		a := d.Attempts[0]
		require.Equal(t, outbound.ErrorKindDNS, a.ErrorKind, "error: %s", a.Error)
		require.Contains(t, a.Error, "DNS lookup failed")
		require.Contains(t, a.Error, "hooks.crmkit.invalid")
		require.Zero(t, a.StatusCode)
		asked := false
		queries.Range(func(any, any) bool { asked = true; return false })
		require.True(t, asked, "the lookup went to the test's resolver")
	})
}

func TestRotationGraceSignsWithBothSecrets(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		h := newHarness(t, dsn, outbound.Config{AllowPrivate: true})
		rv := newReceiver(t)
		e, oldSecret := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		_, newSecret, err := h.svc.RotateSecret(ctx, h.ws, e.ID, time.Hour)
		require.NoError(t, err)
		require.NotEqual(t, oldSecret, newSecret)

		ev := closedWon(h.ws)
		h.emit(ev)
		h.waitDelivery(e.ID, outbound.StatusSucceeded)
		r := rv.got()[0]
		ts := r.header.Get("webhook-timestamp")
		require.Equal(t, fmt.Sprintf("t=%s,v1=%s,v1=%s", ts, refSmartLite(newSecret, ts, r.body), refSmartLite(oldSecret, ts, r.body)),
			r.header.Get("X-SmartLite-Signature"))
		require.Equal(t, refStandard(t, newSecret, ev.ID, ts, r.body)+" "+refStandard(t, oldSecret, ev.ID, ts, r.body),
			r.header.Get("webhook-signature"))
		standardOnly := r.header.Clone()
		standardOnly.Del("X-SmartLite-Signature")
		for _, secret := range []string{oldSecret, newSecret} {
			require.NoError(t, webhook.Verify(r.header, r.body, []string{secret}))
			require.NoError(t, webhook.Verify(standardOnly, r.body, []string{secret}))
		}

		// Once the grace period is over only the new secret signs.
		h.clock.Advance(2 * time.Hour)
		h.emit(closedWon(h.ws))
		require.Eventually(t, func() bool { return len(rv.got()) == 2 }, waitTimeout, 20*time.Millisecond)
		r = rv.got()[1]
		require.Equal(t, 1, strings.Count(r.header.Get("X-SmartLite-Signature"), "v1="))
		require.NoError(t, webhook.Verifier{Secrets: []string{newSecret}, Clock: h.clock.Now}.Verify(r.header, r.body))
		require.ErrorIs(t, webhook.Verifier{Secrets: []string{oldSecret}, Clock: h.clock.Now}.Verify(r.header, r.body), webhook.ErrInvalidSignature)
	})
}

// TestTwoReplicasDeliverOnce: two replicas, each with its own River client,
// on one Postgres share the work and still deliver every event once. The
// events are committed one at a time and each replica's producer polls at
// jittered intervals, so which replica locks an event's fan-out is close to
// a coin toss: over 100 events both replicas get some.
func TestTwoReplicasDeliverOnce(t *testing.T) {
	dsn := testdb.PostgresDSN(t)
	h := newHarness(t, dsn, outbound.Config{AllowPrivate: true})
	first, firstClient := h.svc, h.client
	h.start(outbound.Config{AllowPrivate: true})
	require.NotEqual(t, firstClient.ID(), h.client.ID())
	rv := newReceiver(t)
	e, _, err := first.Create(context.Background(), h.ws, outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
	require.NoError(t, err)
	const n = 100
	for range n {
		h.emit(closedWon(h.ws))
	}
	require.Eventually(t, func() bool {
		ds := h.deliveries(e.ID)
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status != outbound.StatusSucceeded {
				return false
			}
		}
		return true
	}, waitTimeout, 50*time.Millisecond)
	// A duplicate could only come from a job still to run or running; once
	// none is left, every request the receiver will get is in.
	h.waitIdle()
	seen := map[string]int{}
	for _, r := range rv.got() {
		seen[r.header.Get("webhook-id")]++
	}
	require.Len(t, seen, n)
	for id, c := range seen {
		require.Equal(t, 1, c, "event %s delivered %d times", id, c)
	}
	require.Len(t, rv.got(), n)

	workers := h.jobWorkers()
	t.Logf("jobs worked per client: %v", workers)
	require.Len(t, workers, 2, "only the two replicas work jobs")
	require.Positive(t, workers[firstClient.ID()], "the first replica worked none of the jobs")
	require.Positive(t, workers[h.client.ID()], "the second replica worked none of the jobs")
}

// TestOrphanSweep: a delivery job left running by a process that died is
// queued again by the sweep, long before River's rescuer would get to it.
func TestOrphanSweep(t *testing.T) {
	h := newHarness(t, testdb.PostgresDSN(t), outbound.Config{AllowPrivate: true})
	ctx := context.Background()
	rv := newReceiver(t)
	e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
	ev := closedWon(h.ws)
	// Disable the endpoint so fan-out skips it; the delivery below is made
	// by hand, as a crashed process would have left it.
	_, err := h.svc.Update(ctx, h.ws, e.ID, func(in *outbound.EndpointInput) error { in.Enabled = ptr(false); return nil })
	require.NoError(t, err)
	h.emit(ev)
	h.waitFanout()
	_, err = h.svc.Update(ctx, h.ws, e.ID, func(in *outbound.EndpointInput) error { in.Enabled = ptr(true); return nil })
	require.NoError(t, err)

	d := &outbound.Delivery{ID: records.NewID("dlv"), Workspace: h.ws, EndpointID: e.ID, EventID: ev.ID,
		EventType: ev.Type, Status: outbound.StatusPending, CreatedAt: time.Now()}
	var jobID int64
	require.NoError(t, errOf(h.st.CreateDeliveries(ctx, []*outbound.Delivery{d}, func(ctx context.Context, tx *sql.Tx, _ []*outbound.Delivery) error {
		// Parked on a queue nobody works, then marked as running since a
		// minute ago by a client that no longer exists.
		res, err := h.client.InsertTx(ctx, tx, outbound.DeliverArgs{DeliveryID: d.ID, Trigger: outbound.TriggerScheduled},
			&river.InsertOpts{Queue: "parked"})
		if err != nil {
			return err
		}
		jobID = res.Job.ID
		_, err = tx.ExecContext(ctx, `UPDATE river_job SET state = 'running', queue = 'webhooks', attempt = 1,
			attempted_at = now() - interval '1 minute', attempted_by = ARRAY['dead-client'] WHERE id = $1`, jobID)
		return err
	})))

	got := h.waitDelivery(e.ID, outbound.StatusSucceeded)
	require.Equal(t, d.ID, got.ID)
	require.Len(t, rv.got(), 1)
	// The sweep queues the replacement before it cancels the orphan, so the
	// delivery may be done a moment before the cancellation.
	require.Eventually(t, func() bool {
		orphan, err := h.client.JobGet(ctx, jobID)
		return err == nil && strings.Contains(string(orphan.Metadata), "cancel_attempted_at")
	}, waitTimeout, 20*time.Millisecond, "the orphan is cancelled so River's rescuer does not run it again")
	require.Contains(t, h.logs.String(), "orphaned")
}

// TestOrphanedFanout: a fan-out job whose process died before it stored its
// inline first attempt is swept up and run again, and the delivery made.
func TestOrphanedFanout(t *testing.T) {
	h := newHarness(t, testdb.PostgresDSN(t), outbound.Config{AllowPrivate: true})
	ctx := context.Background()
	rv := newReceiver(t)
	e, _ := h.endpoint(outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}, Enabled: ptr(false)})
	ev := closedWon(h.ws)
	h.emit(ev) // its own fan-out finds the endpoint disabled
	h.waitFanout()
	_, err := h.svc.Update(ctx, h.ws, e.ID, func(in *outbound.EndpointInput) error { in.Enabled = ptr(true); return nil })
	require.NoError(t, err)

	// What a dead process left: a fan-out job of the event, running since a
	// minute ago, never finished.
	res, err := h.client.Insert(ctx, records.FanoutArgs{EventID: ev.ID, Workspace: h.ws}, &river.InsertOpts{Queue: "parked"})
	require.NoError(t, err)
	_, err = h.st.DB().ExecContext(ctx, `UPDATE river_job SET state = 'running', queue = 'default', attempt = 1,
		attempted_at = now() - interval '1 minute', attempted_by = ARRAY['dead-client'] WHERE id = ?`, res.Job.ID)
	require.NoError(t, err)

	got := h.waitDelivery(e.ID, outbound.StatusSucceeded)
	require.Equal(t, ev.ID, got.EventID)
	require.Len(t, h.deliveries(e.ID), 1)
	require.Len(t, rv.got(), 1)
}

// must answers v, panicking on err; for values a test itself made.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// errOf drops a result to keep its error.
func errOf[T any](_ T, err error) error { return err }
