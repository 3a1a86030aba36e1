package outbound_test

import (
	"fmt"
	"net/netip"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/webhook/outbound"
)

// An endpoint that wants only the deals that just closed.
func ExampleEndpoint_Matches() {
	finance := &outbound.Endpoint{
		Events:    []string{"record.updated"},
		Objects:   []string{"opportunity"},
		Condition: &outbound.Condition{Field: "stage", ChangedTo: "Closed Won"},
	}
	closed := &records.Event{Type: records.EventUpdated, Object: "opportunity",
		Changes: map[string]records.Change{"stage": {From: "Negotiation", To: "Closed Won"}}}
	renamed := &records.Event{Type: records.EventUpdated, Object: "opportunity",
		Changes: map[string]records.Change{"name": {From: "Acme", To: "Acme renewal"}}}
	account := &records.Event{Type: records.EventCreated, Object: "account"}

	fmt.Println(finance.Matches(closed), finance.Matches(renamed), finance.Matches(account))
	// Output: true false false
}

// Which addresses an endpoint may reach, with and without the opt-in for
// private networks.
func ExampleAddressPolicy_Check() {
	for _, a := range []string{"93.184.215.14", "127.0.0.1", "169.254.169.254"} {
		addr := netip.MustParseAddr(a)
		fmt.Printf("%-16s strict: %-5v allow-private: %v\n", a,
			outbound.AddressPolicy{}.Check(addr) == nil,
			outbound.AddressPolicy{AllowPrivate: true}.Check(addr) == nil)
	}
	// Output:
	// 93.184.215.14    strict: true  allow-private: true
	// 127.0.0.1        strict: false allow-private: true
	// 169.254.169.254  strict: false allow-private: false
}
