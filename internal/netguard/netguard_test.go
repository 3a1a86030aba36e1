package netguard_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/netguard"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		addr         string
		strict, open bool // allowed without and with AllowPrivate
	}{
		{"93.184.215.14", true, true},
		{"127.0.0.1", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"10.0.0.1", false, true},
		{"fe80::1%eth0", false, true},
		{"169.254.169.254", false, false},
		{"0.0.0.0", false, false},
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 of 169.254.169.254
		{"2002:7f00:0001::", false, true},    // 6to4 of 127.0.0.1
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			for _, p := range []struct {
				policy netguard.Policy
				ok     bool
			}{{netguard.Policy{}, tc.strict}, {netguard.Policy{AllowPrivate: true}, tc.open}} {
				err := p.policy.Check(a)
				if p.ok {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, netguard.ErrBlocked)
				}
			}
		})
	}
}

// TestDialer connects to a loopback listener: the strict policy refuses
// before connecting, so the listener never accepts; the open one connects.
func TestDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan struct{}, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			_ = c.Close()
		}
	}()
	ctx := context.Background()

	_, err = netguard.Policy{}.Dialer().DialContext(ctx, "tcp", ln.Addr().String())
	require.ErrorIs(t, err, netguard.ErrBlocked)
	require.Contains(t, err.Error(), "127.0.0.1 is a loopback address")

	c, err := netguard.Policy{AllowPrivate: true}.Dialer().DialContext(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	_ = c.Close()
	<-accepted
	require.Empty(t, accepted, "the refused dial must not have connected")

	_, err = netguard.Policy{AllowPrivate: true}.Dialer().DialContext(ctx, "udp", "127.0.0.1:53")
	require.ErrorIs(t, err, netguard.ErrBlocked)
}
