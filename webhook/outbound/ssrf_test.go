package outbound_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// fakeResolver answers from a table, so no test resolves a real name.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var testResolver = fakeResolver{
	"hooks.example.test":    {netip.MustParseAddr("93.184.215.14")},
	"internal.example.test": {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.1.2.3")},
	"metadata.example.test": {netip.MustParseAddr("169.254.169.254")},
	// What a rebinding name answered at registration; at dial time the
	// system resolver answers 127.0.0.1 for localhost.
	"localhost": {netip.MustParseAddr("93.184.215.14")},
}

func TestAddressPolicy(t *testing.T) {
	tests := []struct {
		addr         string
		strict, open bool // allowed without and with AllowPrivate
	}{
		{"93.184.215.14", true, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true, true},
		{"127.0.0.1", false, true},
		{"127.8.9.10", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.0.0.1", false, true},
		{"172.16.5.4", false, true},
		{"192.168.1.1", false, true},
		{"fd12:3456::1", false, true},
		{"100.64.0.1", false, true},
		{"169.254.1.1", false, true},
		{"fe80::1", false, true},
		{"169.254.169.254", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"fd00:ec2::254", false, false},
		{"100.100.100.200", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"ff02::1", false, false},
		{"255.255.255.255", false, false},
		{"64:ff9b::7f00:1", false, true},     // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 of 169.254.169.254
		{"2002:7f00:0001::", false, true},    // 6to4 of 127.0.0.1
		{"64:ff9b::5db8:d70e", true, true},   // NAT64 of a public address
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			err := outbound.AddressPolicy{}.Check(a)
			if tc.strict {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, outbound.ErrBlockedAddress)
			}
			err = outbound.AddressPolicy{AllowPrivate: true}.Check(a)
			if tc.open {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, outbound.ErrBlockedAddress)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url     string
		blocked bool // refused as an address rather than as a URL
		ok      bool
	}{
		{url: "https://hooks.example.test/crm", ok: true},
		{url: "http://93.184.215.14:8080/x", ok: true},
		{url: "http://127.0.0.1:9000/hook", blocked: true},
		{url: "http://localhost.:9000/hook"},
		{url: "http://10.0.0.1/", blocked: true},
		{url: "http://169.254.169.254/latest/meta-data/", blocked: true},
		{url: "http://[::1]:8080/", blocked: true},
		{url: "http://[fd00:ec2::254]/", blocked: true},
		{url: "http://[::ffff:127.0.0.1]/", blocked: true},
		{url: "http://0.0.0.0:80/", blocked: true},
		{url: "http://internal.example.test/", blocked: true},
		{url: "http://metadata.example.test/", blocked: true},
		{url: "ftp://hooks.example.test/"},
		{url: "file:///etc/passwd"},
		{url: "gopher://127.0.0.1/"},
		{url: "//hooks.example.test/x"},
		{url: "https://user:pass@hooks.example.test/"},
		{url: "https:///nohost"},
		{url: "http://unknown.example.test/"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := outbound.AddressPolicy{}.CheckURL(context.Background(), testResolver, tc.url)
			switch {
			case tc.ok:
				require.NoError(t, err)
			case tc.blocked:
				require.ErrorIs(t, err, outbound.ErrBlockedAddress)
			default:
				require.Error(t, err)
				require.NotErrorIs(t, err, outbound.ErrBlockedAddress)
			}
		})
	}
}

func TestRegistrationRefusesPrivateTargets(t *testing.T) {
	h := newHarness(t, testdb.SQLiteDSN(t), outbound.Config{Resolver: testResolver})
	ctx := context.Background()
	for _, url := range []string{"http://127.0.0.1:9000/hook", "http://10.0.0.1/hook", "http://169.254.169.254/", "http://internal.example.test/"} {
		t.Run(url, func(t *testing.T) {
			_, _, err := h.svc.Create(ctx, h.ws, outbound.EndpointInput{URL: url, Events: []string{"*"}})
			var ve *records.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Len(t, ve.Fields, 1)
			require.Equal(t, "url", ve.Fields[0].Field)
			require.Equal(t, "blocked_address", ve.Fields[0].Code)
			require.Contains(t, ve.Fields[0].Message, "-allow-private-webhooks")
			require.Contains(t, ve.Fields[0].Message, "CRMKIT_ALLOW_PRIVATE_WEBHOOKS")
		})
	}
	t.Run("update", func(t *testing.T) {
		e, _, err := h.svc.Create(ctx, h.ws, outbound.EndpointInput{URL: "https://hooks.example.test/crm", Events: []string{"*"}})
		require.NoError(t, err)
		_, err = h.svc.Update(ctx, h.ws, e.ID, func(in *outbound.EndpointInput) error {
			in.URL = "http://[::1]/"
			return nil
		})
		var ve *records.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, "blocked_address", ve.Fields[0].Code)
	})
}

func TestDialTimeGuard(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		// The endpoint is registered while private targets are allowed; the
		// replica that delivers does not allow them, and must refuse before
		// connecting, so the loopback receiver never sees a request.
		h := newHarness(t, dsn, outbound.Config{Resolver: testResolver, Schedule: []time.Duration{50 * time.Millisecond}})
		open, err := outbound.New(outbound.Config{Store: h.st, AllowPrivate: true})
		require.NoError(t, err)
		rv := newReceiver(t)
		literal, _, err := open.Create(context.Background(), h.ws, outbound.EndpointInput{URL: rv.URL + "/hook", Events: []string{"*"}})
		require.NoError(t, err)
		// DNS rebinding: "localhost" looked public at registration.
		_, port, _ := net.SplitHostPort(rv.Listener.Addr().String())
		rebound, _ := h.endpoint(outbound.EndpointInput{URL: "http://localhost:" + port + "/rebound", Events: []string{"*"}})

		h.emit(closedWon(h.ws))
		for _, id := range []string{literal.ID, rebound.ID} {
			d := h.waitDelivery(id, outbound.StatusFailed)
			require.NotEmpty(t, d.Attempts)
			for _, a := range d.Attempts {
				require.Equal(t, outbound.ErrorKindBlocked, a.ErrorKind, a.Error)
				require.Contains(t, a.Error, "loopback address")
				require.Contains(t, a.Error, "-allow-private-webhooks")
			}
		}
		require.Empty(t, rv.got(), "nothing may reach the receiver")
	})
}

func TestEndpointValidation(t *testing.T) {
	h := newHarness(t, testdb.SQLiteDSN(t), outbound.Config{AllowPrivate: true})
	ctx := context.Background()
	tests := []struct {
		name   string
		in     outbound.EndpointInput
		fields []string
	}{
		{"no url", outbound.EndpointInput{Events: []string{"*"}}, []string{"url"}},
		{"no events", outbound.EndpointInput{URL: "http://127.0.0.1/x"}, []string{"events"}},
		{"unknown event", outbound.EndpointInput{URL: "http://127.0.0.1/x", Events: []string{"record.archived"}}, []string{"events"}},
		{"other namespace", outbound.EndpointInput{URL: "http://127.0.0.1/x", Events: []string{"invoice.*"}}, []string{"events"}},
		{"condition without field", outbound.EndpointInput{URL: "http://127.0.0.1/x", Events: []string{"*"},
			Condition: &outbound.Condition{ChangedTo: "Closed Won"}}, []string{"condition.field"}},
		{"scheme", outbound.EndpointInput{URL: "ws://127.0.0.1/x", Events: []string{"*"}}, []string{"url"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := h.svc.Create(ctx, h.ws, tc.in)
			var ve *records.ValidationError
			require.True(t, errors.As(err, &ve), "%v", err)
			var fields []string
			for _, f := range ve.Fields {
				fields = append(fields, f.Field)
			}
			require.Equal(t, tc.fields, fields)
		})
	}
}
