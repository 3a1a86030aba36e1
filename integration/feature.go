package integration

import (
	"github.com/riverqueue/river"
)

// feature is one part of the API a Service is built from: the routes it
// adds to the table, the OpenAPI schemas those routes name, and the
// background jobs it works. New lists the features of each Service
// explicitly, so nothing is registered in package state and two Services in
// one process share nothing.
type feature struct {
	name    string
	routes  []route
	schemas map[string]any
	// jobs registers the feature's workers and answers its periodic jobs;
	// nil when the feature works no jobs.
	jobs func(w *river.Workers) ([]*river.PeriodicJob, error)
	// tune adjusts the job client's configuration before it is created (a
	// poll interval, a queue of the feature's own); nil when it needs none.
	tune func(cfg *river.Config)
}

// buildFeatures answers the Service's features in route-table order.
func (s *Service) buildFeatures() []feature {
	return []feature{
		s.metaFeature(),
		s.recordsFeature(),
		s.keysFeature(),
		s.auditFeature(),
		s.eventsFeature(),
		s.webhooksFeature(),
		s.bulkFeature(),
		s.importsFeature(),
		s.inboundFeature(),
		s.connectorsFeature(),
	}
}

// routeTable answers every feature's routes, in order.
func routeTable(fs []feature) []route {
	var rs []route
	for _, f := range fs {
		rs = append(rs, f.routes...)
	}
	return rs
}
