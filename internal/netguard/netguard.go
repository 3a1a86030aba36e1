// Package netguard decides which IP addresses crmkit may connect to on a
// tenant's behalf. Outbound webhooks and pull connectors both fetch URLs an
// API caller chose; without a guard, such a URL could reach the host's own
// loopback services, the private network around it, or a cloud's instance
// metadata service (server-side request forgery).
//
// A Policy refuses those addresses twice: CheckURL when a URL is registered
// (every address its host resolves to), and Control when a connection is
// made, with the address actually dialled, which defeats DNS rebinding (a
// name that resolved to a public address at registration and resolves to a
// private one later). Policy.AllowPrivate opts into loopback, private,
// link-local and shared addresses for local testing; metadata, multicast,
// unspecified and reserved addresses stay refused even then.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrBlocked is the error a check or a connection fails with when the
// address may not be reached. The error wrapping it says which address and
// why.
var ErrBlocked = errors.New("address not allowed")

// Resolver looks a host name up. *net.Resolver satisfies it; tests give a
// fixed table so that nothing resolves a real name.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Reasons an address is refused, as Policy.Check reports them.
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

// alwaysRefused are ranges no tenant-chosen URL has any business reaching.
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

// Policy decides which IP addresses may be reached. Its zero value refuses
// every non-public address.
type Policy struct {
	// AllowPrivate permits loopback, private (RFC 1918, ULA), link-local and
	// shared (RFC 6598) addresses, for local testing and private networks.
	// Cloud metadata, multicast, unspecified and reserved addresses stay
	// refused.
	AllowPrivate bool
}

// Check returns nil when addr may be reached, and otherwise an error wrapping
// ErrBlocked that says why.
func (p Policy) Check(addr netip.Addr) error {
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
	article := "a"
	if strings.ContainsRune("aeiou", rune(reason[0])) {
		article = "an"
	}
	return fmt.Errorf("%w: %s is %s %s address", ErrBlocked, addr, article, reason)
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

// CheckURL vets a URL at registration: an absolute http or https URL with a
// host, every address of which the policy allows. Host names are resolved
// with r (net.DefaultResolver when nil); connections are checked again at
// dial time (Control), because DNS may answer differently later. Errors wrap
// ErrBlocked when an address is refused.
func (p Policy) CheckURL(ctx context.Context, r Resolver, raw string) error {
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
		// Credentials in the URL would be stored and shown back in lists;
		// webhook receivers authenticate by signature, and connectors send
		// credentials in headers, which are never shown back.
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

// Control is a net.Dialer Control function: it runs after name resolution,
// with the address about to be connected, and refuses it before any packet
// leaves. Only TCP is allowed.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return fmt.Errorf("%w: network %s", ErrBlocked, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBlocked, err)
	}
	return p.Check(ap.Addr())
}

// Dialer answers a net.Dialer whose every connection the policy checks
// (Control), with a 5 s connect timeout and 30 s keep-alive. A transport
// built on it must not use a proxy: a proxy would dial on our behalf,
// unchecked.
func (p Policy) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: p.Control}
}
