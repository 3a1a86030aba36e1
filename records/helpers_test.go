package records_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// clock is a test clock that moves one second forward on every reading, so
// each write has its own distinct time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// env is one pipeline on a fresh database with one workspace.
type env struct {
	st    *store.Store
	p     *records.Pipeline
	ws    string
	clock *clock
}

// tinyPlan caps workspaces at tinyCap records, for plan limit tests.
const (
	tinyPlan = "tiny"
	tinyCap  = 25
)

// newEnv opens dsn and builds a pipeline with cfg's rules and objects (the
// defaults when nil), the default plans plus tinyPlan, and a workspace on
// plan.
func newEnv(tb testing.TB, dsn string, cfg records.Config, plan string) *env {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	e := &env{st: st, clock: newClock()}
	cfg.Store = st
	if cfg.Plans == nil {
		cfg.Plans, err = records.NewPlans(st, append(records.DefaultPlans(), records.Plan{Name: tinyPlan, MaxRecords: tinyCap}), 0)
		require.NoError(tb, err)
	}
	if cfg.Clock == nil {
		cfg.Clock = e.clock.Now
	}
	e.p, err = records.NewPipeline(cfg)
	require.NoError(tb, err)
	e.ws = e.workspace(tb, plan)
	return e
}

func (e *env) workspace(tb testing.TB, plan string) string {
	tb.Helper()
	ws := &records.Workspace{Name: "Acme", Plan: plan}
	require.NoError(tb, e.st.CreateWorkspace(context.Background(), ws))
	return ws.ID
}

// count answers the rows of table, all of them or those matching where.
func (e *env) count(tb testing.TB, table string) int {
	tb.Helper()
	var n int
	require.NoError(tb, e.st.DB().NewRaw("SELECT count(*) FROM "+table).Scan(context.Background(), &n))
	return n
}

// recordCount answers the workspace's plan counter.
func (e *env) recordCount(tb testing.TB, ws string) int64 {
	tb.Helper()
	n, err := e.st.RecordCount(context.Background(), ws)
	require.NoError(tb, err)
	return n
}

func (e *env) audit(tb testing.TB, recordID string) []*records.AuditEntry {
	tb.Helper()
	a, err := e.st.ListAudit(context.Background(), e.ws, recordID, "", 100)
	require.NoError(tb, err)
	return a
}

func (e *env) events(tb testing.TB) []*records.Event {
	tb.Helper()
	evs, err := e.p.Events(context.Background(), e.ws, "", 1000)
	require.NoError(tb, err)
	return evs
}

// opp is a write of an opportunity in the env's workspace.
func (e *env) opp(fields records.Fields) records.Write {
	return records.Write{Workspace: e.ws, Object: "opportunity", Fields: fields, Source: records.SourceAPI,
		Actor: records.Actor{Kind: "api_key", ID: "key_test"}}
}

// fieldCodes maps each failing field of a validation error to its code.
func fieldCodes(tb testing.TB, err error) map[string]string {
	tb.Helper()
	require.ErrorIs(tb, err, records.ErrValidation)
	var ve *records.ValidationError
	require.ErrorAs(tb, err, &ve)
	out := make(map[string]string, len(ve.Fields))
	for _, f := range ve.Fields {
		require.NotEmpty(tb, f.Message, f.Field)
		out[f.Field] = f.Code
	}
	return out
}
