package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrBlockedAddress is the error a delivery or a registration fails with when
// its URL leads to an address endpoints may not reach. Registration answers
// it inside a *records.ValidationError on the url field.
var ErrBlockedAddress = errors.New("address not allowed for webhooks")

// OptInHint names the switches that allow private targets; refusals quote it
// so an operator testing locally knows what to turn on.
const OptInHint = "to allow private addresses for local testing, start the reference server with -allow-private-webhooks (env CRMKIT_ALLOW_PRIVATE_WEBHOOKS=1)"

// Resolver looks a host name up. *net.Resolver satisfies it; tests give a
// fixed table so that nothing resolves a real name.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Reasons an address is refused, as AddressPolicy.Check reports them.
const (
	reasonLoopback    = "loopback"
	reasonPrivate     = "private"
	reasonLinkLocal   = "link-local"
	reasonShared      = "shared (carrier-grade NAT)"
	reasonMetadata    = "cloud metadata"
	reasonMulticast   = "multicast"
	reasonUnspecified = "unspecified"
	reasonReserved    = "reserved"
)

// metadataAddrs are the instance-metadata services of the big clouds. They
// stay refused even when private targets are allowed: a local test never
// needs them, and reaching them is what SSRF attacks are for.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, DigitalOcean, OpenStack
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud
}

// privateOptIn are ranges a host may opt into (AllowPrivate) for local
// testing, with the reason each is refused otherwise.
var privateOptIn = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), reasonLoopback},
	{netip.MustParsePrefix("::1/128"), reasonLoopback},
	{netip.MustParsePrefix("10.0.0.0/8"), reasonPrivate},
	{netip.MustParsePrefix("172.16.0.0/12"), reasonPrivate},
	{netip.MustParsePrefix("192.168.0.0/16"), reasonPrivate},
	{netip.MustParsePrefix("fc00::/7"), reasonPrivate},
	{netip.MustParsePrefix("169.254.0.0/16"), reasonLinkLocal},
	{netip.MustParsePrefix("fe80::/10"), reasonLinkLocal},
	{netip.MustParsePrefix("100.64.0.0/10"), reasonShared},
}

// alwaysRefused are ranges no webhook has any business reaching.
var alwaysRefused = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), reasonUnspecified}, // "this network"; 0.0.0.0 reaches the local host on Linux
	{netip.MustParsePrefix("::/128"), reasonUnspecified},
	{netip.MustParsePrefix("224.0.0.0/4"), reasonMulticast},
	{netip.MustParsePrefix("ff00::/8"), reasonMulticast},
	{netip.MustParsePrefix("240.0.0.0/4"), reasonReserved}, // includes 255.255.255.255
	{netip.MustParsePrefix("192.0.0.0/24"), reasonReserved},
	{netip.MustParsePrefix("198.18.0.0/15"), reasonReserved},
	{netip.MustParsePrefix("192.0.2.0/24"), reasonReserved}, // documentation ranges
	{netip.MustParsePrefix("198.51.100.0/24"), reasonReserved},
	{netip.MustParsePrefix("203.0.113.0/24"), reasonReserved},
	{netip.MustParsePrefix("2001:db8::/32"), reasonReserved},
	{netip.MustParsePrefix("100::/64"), reasonReserved}, // discard-only
}

// AddressPolicy decides which IP addresses webhooks may reach. Its zero value
// refuses every non-public address.
type AddressPolicy struct {
	// AllowPrivate permits loopback, private (RFC 1918, ULA), link-local and
	// shared (RFC 6598) addresses, for local testing and private networks.
	// Cloud metadata, multicast, unspecified and reserved addresses stay
	// refused.
	AllowPrivate bool
}

// Check returns nil when addr may be reached, and otherwise an error wrapping
// ErrBlockedAddress that says why.
func (p AddressPolicy) Check(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	for _, embedded := range embeddedIPv4(addr) {
		if err := p.Check(embedded); err != nil {
			return err
		}
	}
	for _, m := range metadataAddrs {
		if addr == m {
			return blocked(addr, reasonMetadata)
		}
	}
	for _, r := range alwaysRefused {
		if r.prefix.Contains(addr) {
			return blocked(addr, r.reason)
		}
	}
	if p.AllowPrivate {
		return nil
	}
	for _, r := range privateOptIn {
		if r.prefix.Contains(addr) {
			return blocked(addr, r.reason)
		}
	}
	return nil
}

func blocked(addr netip.Addr, reason string) error {
	return fmt.Errorf("%w: %s is a %s address", ErrBlockedAddress, addr, reason)
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 answers the IPv4 address that NAT64 and 6to4 addresses carry,
// which is what a packet to them finally reaches.
func embeddedIPv4(addr netip.Addr) []netip.Addr {
	if !addr.Is6() {
		return nil
	}
	b := addr.As16()
	switch {
	case nat64.Contains(addr):
		return []netip.Addr{netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})}
	case sixToFour.Contains(addr):
		return []netip.Addr{netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})}
	}
	return nil
}

// CheckURL vets an endpoint URL at registration: an absolute http or https
// URL with a host, every address of which the policy allows. Host names are
// resolved with r (net.DefaultResolver when nil); delivery checks the address
// again at dial time, because DNS may answer differently later. Errors wrap
// ErrBlockedAddress when an address is refused.
func (p AddressPolicy) CheckURL(ctx context.Context, r Resolver, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("the scheme must be http or https")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("the URL has no host")
	}
	if u.User != nil {
		// Credentials in the URL would be stored and shown in lists; receivers
		// authenticate deliveries by their signature instead.
		return errors.New("the URL must not carry a user name or password")
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return p.Check(addr)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("the host %q does not resolve", host)
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return err
		}
	}
	return nil
}

// dialControl is a net.Dialer Control function: it runs after name
// resolution, with the address about to be connected, and refuses it before
// any packet leaves. This is what defeats DNS rebinding, where a name that
// resolved to a public address at registration resolves to a private one now.
func (p AddressPolicy) dialControl(network, address string, _ syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return fmt.Errorf("%w: network %s", ErrBlockedAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBlockedAddress, err)
	}
	return p.Check(ap.Addr())
}
