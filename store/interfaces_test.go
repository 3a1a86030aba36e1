package store_test

import (
	"github.com/smartlite/crmkit/connector"
	"github.com/smartlite/crmkit/ingest"
	"github.com/smartlite/crmkit/integration"
	"github.com/smartlite/crmkit/store"
)

// The store is what the facade's two persistence seams take.
var (
	_ integration.Store        = (*store.Store)(nil)
	_ integration.JobQueue     = (*store.Store)(nil)
	_ integration.QueueDepther = (*store.Store)(nil)
	_ ingest.BulkStore         = (*store.Store)(nil)
	_ connector.Store          = (*store.Store)(nil)
)
