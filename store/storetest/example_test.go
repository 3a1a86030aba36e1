package storetest_test

import (
	"fmt"
	"strings"

	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store/storetest"
)

// NewRecord makes the unsaved records the cases write; a feature's own store
// tests use it the same way before storing one with Insert.
func ExampleNewRecord() {
	r := storetest.NewRecord("ws_test", "opportunity", records.Fields{"name": "Acme renewal"})
	fmt.Println(strings.HasPrefix(r.ID, "rec_"), r.Object, r.Version, r.Fields["name"])
	// Output: true opportunity 1 Acme renewal
}
