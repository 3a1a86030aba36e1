package outbound

import (
	"github.com/smartlite/crmkit/internal/netguard"
)

// ErrBlockedAddress is the error a delivery or a registration fails with when
// its URL leads to an address endpoints may not reach. Registration answers
// it inside a *records.ValidationError on the url field.
var ErrBlockedAddress = netguard.ErrBlocked

// OptInHint names the switches that allow private targets; refusals quote it
// so an operator testing locally knows what to turn on.
const OptInHint = "to allow private addresses for local testing, start the reference server with -allow-private-webhooks (env CRMKIT_ALLOW_PRIVATE_WEBHOOKS=1)"

// Resolver looks a host name up. *net.Resolver satisfies it; tests give a
// fixed table so that nothing resolves a real name.
type Resolver = netguard.Resolver

// AddressPolicy decides which IP addresses webhooks may reach; its zero value
// refuses every non-public address. It is the policy pull connectors use too
// (package internal/netguard): Check vets one address, CheckURL a URL at
// registration, and Control each connection a delivery makes.
type AddressPolicy = netguard.Policy
