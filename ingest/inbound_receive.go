package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook"
)

// Receive verifies one delivery posted to a source and stores it with its
// processing job, in one transaction. Nothing is parsed or stored before
// the signature holds on the raw bytes.
//
// It answers the stored event, or, for a delivery whose id the source has
// seen before, the first event with that id and duplicate true (nothing is
// stored then). It fails with ErrUnauthenticated (wrapped) for an unknown
// or disabled source and for a missing, malformed, wrong or stale
// signature, and with an *http.MaxBytesError when the body is over the
// source's limit.
func (in *Inbound) Receive(ctx context.Context, sourceID string, header http.Header, body io.Reader) (ev *InboundEvent, duplicate bool, err error) {
	src, err := in.st.GetInboundSource(ctx, "", nonEmpty(sourceID))
	if errors.Is(err, records.ErrNotFound) {
		return nil, false, fmt.Errorf("%w: no such source", ErrUnauthenticated)
	}
	if err != nil {
		return nil, false, err
	}
	if !src.Enabled {
		return nil, false, fmt.Errorf("%w: the source is disabled", ErrUnauthenticated)
	}
	raw, err := io.ReadAll(io.LimitReader(body, src.MaxBodyBytes+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(raw)) > src.MaxBodyBytes {
		return nil, false, &http.MaxBytesError{Limit: src.MaxBodyBytes}
	}
	now := in.clock()
	if err := verifyDelivery(src.Kind, src.secrets(now), header, raw, in.clock); err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	ev = &InboundEvent{ID: records.NewID("inb"), Workspace: src.Workspace, SourceID: src.ID,
		DeliveryID: deliveryID(src.Kind, header), Status: StatusReceived, Headers: redact(header), Body: raw,
		ReceivedAt: now.UTC().Truncate(time.Microsecond)}
	first, dup, err := in.st.ReceiveInboundEvent(ctx, ev, in.job(ev))
	if err != nil {
		return nil, false, err
	}
	if dup {
		in.observe(StatusDuplicate)
		return first, true, nil
	}
	in.observe(StatusReceived)
	return ev, false, nil
}

// verifyDelivery checks a delivery's signature by the scheme of kind.
func verifyDelivery(kind string, secrets []string, header http.Header, body []byte, clock func() time.Time) error {
	v := webhook.Verifier{Secrets: secrets, Clock: clock}
	switch kind {
	case KindShopify:
		return v.VerifyShopify(header, body)
	case KindStandard:
		return v.VerifyStandard(header, body)
	case KindSmartLite:
		return v.VerifySmartLite(header, body)
	}
	return fmt.Errorf("unknown source kind %q", kind)
}

// deliveryID is the sender's id of a delivery, which its retries repeat.
func deliveryID(kind string, header http.Header) string {
	var id string
	if kind == KindShopify {
		id = header.Get(webhook.HeaderShopifyWebhookID)
	} else {
		id = header.Get(webhook.HeaderWebhookID)
	}
	id = strings.TrimSpace(id)
	if len(id) > maxDeliveryID {
		// A longer id is no sender's; keeping its start still drops its
		// retries.
		id = id[:maxDeliveryID]
	}
	return id
}

const maxDeliveryID = 200

// redacted replaces the value of a header that could let someone sign or
// authenticate.
const redacted = "[redacted]"

// redact answers a copy of h with signatures, credentials and cookies
// replaced, for the log.
func redact(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if sensitiveHeader(k) {
			out[k] = []string{redacted}
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"signature", "hmac", "secret", "token", "authorization", "cookie", "api-key", "apikey", "password"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// InboundArgs is the job that processes one stored event.
type InboundArgs struct {
	EventID   string `json:"event_id"`
	Workspace string `json:"workspace_id"`
}

// Kind is the job kind of InboundArgs.
func (InboundArgs) Kind() string { return "crmkit_inbound_process" }

// job answers the insert of ev's processing job.
func (in *Inbound) job(ev *InboundEvent) river.InsertManyParams {
	return river.InsertManyParams{Args: InboundArgs{EventID: ev.ID, Workspace: ev.Workspace},
		InsertOpts: &river.InsertOpts{Queue: in.queue, MaxAttempts: inboundAttempts}}
}

// Retry processes an event again with its source's current mapping; it
// fails with ErrNotRetryable while the event waits to be processed.
func (in *Inbound) Retry(ctx context.Context, workspace, id string) (*InboundEvent, error) {
	evs, err := in.st.RequeueInboundEvents(ctx, InboundRequeue{Workspace: workspace, IDs: []string{nonEmpty(id)}}, in.job)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		if _, err := in.Event(ctx, workspace, id); err != nil {
			return nil, err
		}
		return nil, ErrNotRetryable
	}
	in.observe(StatusReceived)
	return evs[0], nil
}

// RetryAll processes again the events q selects (by default the failed
// ones since q.Since) and answers how many.
func (in *Inbound) RetryAll(ctx context.Context, q InboundRequeue) (int, error) {
	q.IDs = nil
	if q.Status == "" {
		q.Status = StatusFailed
	}
	if q.Status != StatusFailed && q.Status != StatusProcessed {
		return 0, &records.ValidationError{Fields: []records.FieldError{{Field: "status", Code: "one_of",
			Message: "must be failed or processed"}}}
	}
	if q.SourceID != "" {
		if _, err := in.Source(ctx, q.Workspace, q.SourceID); err != nil {
			return 0, err
		}
	}
	evs, err := in.st.RequeueInboundEvents(ctx, q, in.job)
	if err != nil {
		return 0, err
	}
	for range evs {
		in.observe(StatusReceived)
	}
	return len(evs), nil
}
