package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"

	"github.com/smartlite/crmkit/records"
)

// Wake-ups. River finds new jobs by polling unless its driver has a
// listener, and River's database/sql driver has none. The store gives its
// job clients one (wakeDriver), fed from two sources:
//
//   - In process: a transaction the store runs notes the queues it inserted
//     available jobs into, and once it has committed, every job client of the
//     store hears of them (an "insert" notification per queue, as River's
//     own notifier would deliver it). Transactions River runs itself (its
//     inserts outside a transaction, queue pauses, leadership) are treated
//     the same way. This is the whole story on SQLite, where one process
//     works its own database.
//   - On Postgres, from other processes: once such a transaction has
//     committed, the store sends River's insert notification (pg_notify) for
//     its queues, and each listener holds a pgx connection of its own that
//     LISTENs for it. Notifications a process sent carry its origin, and its
//     own listener skips them, having been woken in process already. River's
//     own notifications (queue pauses, leadership, inserts of transactions
//     the store does not run) pass through as River sends them.
//
// Polling stays on as the fallback: a notification that is lost (the
// listener reconnecting, a host committing a PublishTx transaction) delays a
// job until the next poll, never more.

// wakeTopicInsert is River's notification topic for new jobs; the payload
// names the queue.
const wakeTopicInsert = "river_insert"

// wakeBus is the in-process half: the listeners of a store's job clients.
type wakeBus struct {
	mu        sync.Mutex
	listeners []*wakeListener
	origin    string
	// outbox holds insert notifications for other processes, sent by one
	// goroutine at a time (sending).
	outbox  []remoteInsert
	sending bool
}

// announceSQL sends an insert notification on River's channel, committed
// without waiting for its WAL to reach disk: it is a hint, and a lost one
// costs a poll's wait.
const announceSQL = `WITH async AS (SELECT set_config('synchronous_commit', 'off', true) AS off)
SELECT pg_notify(concat(coalesce(nullif($1, ''), current_schema()), '.', $2::text), $3::text) FROM async`

// announce tells the other processes on the database about jobs a
// committed transaction made available: pg_notify, after the commit, on a
// pooled connection. Not in the transaction itself: Postgres holds one
// database-wide lock from a notifying transaction's commit until it has
// reached disk, which makes concurrent writers commit one at a time (at
// 16 writers the write time tripled). Notifications asked for while one is
// being sent go out together in the next, so there is at most one in
// flight, however many writes commit.
func (b *wakeBus) announce(s *Store, rs []remoteInsert) {
	if len(rs) == 0 {
		return
	}
	b.mu.Lock()
	for _, r := range rs {
		if !slices.Contains(b.outbox, r) {
			b.outbox = append(b.outbox, r)
		}
	}
	if b.sending {
		b.mu.Unlock()
		return
	}
	b.sending = true
	origin := b.origin
	if origin == "" {
		b.origin = records.NewID("wake")
		origin = b.origin
	}
	b.mu.Unlock()
	go b.send(s, origin)
}

func (b *wakeBus) send(s *Store, origin string) {
	for {
		b.mu.Lock()
		out := b.outbox
		b.outbox = nil
		if len(out) == 0 {
			b.sending = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		for _, r := range out {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := s.sqldb.ExecContext(ctx, announceSQL, r.schema, wakeTopicInsert, insertPayload(r.queue, origin)); err != nil && s.cfg.logger != nil {
				s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "store: job insert notification not sent; other processes find the jobs by polling",
					slog.String("queue", r.queue), slog.String("err", err.Error()))
			}
			cancel()
		}
	}
}

func (b *wakeBus) id() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.origin == "" {
		b.origin = records.NewID("wake")
	}
	return b.origin
}

func (b *wakeBus) add(l *wakeListener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.listeners = append(b.listeners, l)
}

func (b *wakeBus) remove(l *wakeListener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.listeners = slices.DeleteFunc(b.listeners, func(x *wakeListener) bool { return x == l })
}

// post hands the notifications to every listener.
func (b *wakeBus) post(ns []riverdriver.Notification) {
	if len(ns) == 0 {
		return
	}
	b.mu.Lock()
	ls := slices.Clone(b.listeners)
	b.mu.Unlock()
	for _, l := range ls {
		l.deliver(ns)
	}
}

// wakeNotes collects what a transaction will announce once it commits.
type wakeNotes struct {
	mu sync.Mutex
	ns []riverdriver.Notification
	// remote are the queues (with River's schema) to announce to other
	// processes once the transaction has committed.
	remote []remoteInsert
}

// remoteInsert is an insert notification for other processes.
type remoteInsert struct{ schema, queue string }

func (w *wakeNotes) addRemote(schema, queue string) {
	r := remoteInsert{schema, queue}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.Contains(w.remote, r) {
		w.remote = append(w.remote, r)
	}
}

func (w *wakeNotes) add(topic, payload string) {
	n := riverdriver.Notification{Topic: topic, Payload: payload}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.Contains(w.ns, n) {
		w.ns = append(w.ns, n)
	}
}

func (w *wakeNotes) addInserts(jobs []*riverdriver.JobInsertFastParams) {
	for _, j := range jobs {
		// A job scheduled for later is made available by River's scheduler,
		// which announces it then.
		if j.State == rivertype.JobStateAvailable {
			w.add(wakeTopicInsert, insertPayload(j.Queue, ""))
		}
	}
}

func (w *wakeNotes) take() ([]riverdriver.Notification, []remoteInsert) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ns, rs := w.ns, w.remote
	w.ns, w.remote = nil, nil
	return ns, rs
}

// insertPayload is River's insert notification payload, with the origin of
// the process that announced it in process already.
func insertPayload(queue, origin string) string {
	b, _ := json.Marshal(struct {
		Queue  string `json:"queue"`
		Origin string `json:"crmkit_origin,omitempty"`
	}{queue, origin})
	return string(b)
}

type wakeNotesKey struct{}

func wakeNotesFrom(ctx context.Context) *wakeNotes {
	w, _ := ctx.Value(wakeNotesKey{}).(*wakeNotes)
	return w
}

// runInTx runs fn in a transaction and, once it has committed, wakes the
// job clients of the store for the jobs fn inserted. Every store
// transaction that may insert jobs runs through it.
func (s *Store) runInTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	if wakeNotesFrom(ctx) != nil {
		// Nested in a transaction that announces on its own commit.
		return s.db.RunInTx(ctx, nil, fn)
	}
	notes := &wakeNotes{}
	ctx = context.WithValue(ctx, wakeNotesKey{}, notes)
	if err := s.db.RunInTx(ctx, nil, fn); err != nil {
		return err
	}
	s.committed(notes)
	return nil
}

// committed wakes the store's job clients for what a committed
// transaction noted, and has the other processes told.
func (s *Store) committed(notes *wakeNotes) {
	ns, rs := notes.take()
	s.wake.post(ns)
	s.wake.announce(s, rs)
}

// wakeDriver is River's driver for the store's dialect with the store's
// listener added.
type wakeDriver struct {
	riverdriver.Driver[*sql.Tx]
	s *Store
}

// SupportsListener is true for both dialects: without a database listener
// (SQLite) the listener still hears the store's own commits.
func (d *wakeDriver) SupportsListener() bool { return true }

// SupportsListenNotify is true for both dialects: on SQLite notifications
// are delivered in process, once the transaction sending them commits.
func (d *wakeDriver) SupportsListenNotify() bool {
	return d.s.dialect == DialectSQLite || d.Driver.SupportsListenNotify()
}

func (d *wakeDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	return &wakeListener{s: d.s, schema: params.Schema, origin: d.s.wake.id(), ready: make(chan struct{}, 1)}
}

func (d *wakeDriver) GetExecutor() riverdriver.Executor {
	return &wakeExecutor{Executor: d.Driver.GetExecutor(), d: d}
}

func (d *wakeDriver) UnwrapExecutor(tx *sql.Tx) riverdriver.ExecutorTx {
	return &wakeTx{ExecutorTx: d.Driver.UnwrapExecutor(tx), d: d}
}

// wakeExecutor is River's executor outside a transaction.
type wakeExecutor struct {
	riverdriver.Executor
	d *wakeDriver
}

func (e *wakeExecutor) Begin(ctx context.Context) (riverdriver.ExecutorTx, error) {
	tx, err := e.Executor.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &wakeTx{ExecutorTx: tx, d: e.d, own: &wakeNotes{}}, nil
}

func (e *wakeExecutor) NotifyMany(ctx context.Context, params *riverdriver.NotifyManyParams) error {
	if e.d.s.dialect == DialectSQLite {
		e.d.s.wake.post(notificationsOf(params))
		return nil
	}
	return e.Executor.NotifyMany(ctx, params)
}

func notificationsOf(params *riverdriver.NotifyManyParams) []riverdriver.Notification {
	ns := make([]riverdriver.Notification, len(params.Payload))
	for i, p := range params.Payload {
		ns[i] = riverdriver.Notification{Topic: params.Topic, Payload: p}
	}
	return ns
}

// wakeTx is River's executor in a transaction: one River began (own holds
// what it announces at Commit), or one of the store's (its notes are in
// the context, announced by runInTx), or a host's (neither: only Postgres
// notifications announce its jobs).
type wakeTx struct {
	riverdriver.ExecutorTx
	d      *wakeDriver
	own    *wakeNotes
	nested bool
}

func (t *wakeTx) notes(ctx context.Context) *wakeNotes {
	if t.own != nil {
		return t.own
	}
	return wakeNotesFrom(ctx)
}

func (t *wakeTx) JobInsertFastMany(ctx context.Context, params *riverdriver.JobInsertFastManyParams) ([]*riverdriver.JobInsertFastResult, error) {
	res, err := t.ExecutorTx.JobInsertFastMany(ctx, params)
	if err != nil {
		return nil, err
	}
	return res, t.inserted(ctx, params)
}

func (t *wakeTx) JobInsertFastManyNoReturning(ctx context.Context, params *riverdriver.JobInsertFastManyParams) (int, error) {
	n, err := t.ExecutorTx.JobInsertFastManyNoReturning(ctx, params)
	if err != nil {
		return 0, err
	}
	return n, t.inserted(ctx, params)
}

// inserted notes the inserted jobs' queues, to wake the store's job
// clients and, on Postgres, the other processes once the transaction has
// committed.
func (t *wakeTx) inserted(ctx context.Context, params *riverdriver.JobInsertFastManyParams) error {
	w := t.notes(ctx)
	if w == nil {
		return nil
	}
	w.addInserts(params.Jobs)
	if t.d.s.dialect == DialectPostgres {
		for _, j := range params.Jobs {
			if j.State == rivertype.JobStateAvailable {
				w.addRemote(params.Schema, j.Queue)
			}
		}
	}
	return nil
}

// NotifyMany announces on commit. On SQLite that is in process only. On
// Postgres it is pg_notify, for the other processes, but River's insert
// notifications of a transaction that announces in process are noted
// instead and announced after the commit (see wakeBus.announce).
func (t *wakeTx) NotifyMany(ctx context.Context, params *riverdriver.NotifyManyParams) error {
	w := t.notes(ctx)
	switch {
	case w == nil && t.d.s.dialect == DialectSQLite:
		// A host's transaction: its commit is not seen here, and the poll
		// finds what it wrote.
		return nil
	case w == nil:
		return t.ExecutorTx.NotifyMany(ctx, params)
	case params.Topic == wakeTopicInsert:
		for _, p := range params.Payload {
			q := queueOf(p)
			// In the form addInserts gives it, so the two are one.
			w.add(wakeTopicInsert, insertPayload(q, ""))
			if t.d.s.dialect == DialectPostgres {
				w.addRemote(params.Schema, q)
			}
		}
		return nil
	case t.d.s.dialect == DialectSQLite:
		for _, n := range notificationsOf(params) {
			w.add(n.Topic, n.Payload)
		}
		return nil
	}
	return t.ExecutorTx.NotifyMany(ctx, params)
}

func (t *wakeTx) Begin(ctx context.Context) (riverdriver.ExecutorTx, error) {
	tx, err := t.ExecutorTx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &wakeTx{ExecutorTx: tx, d: t.d, own: t.own, nested: true}, nil
}

func (t *wakeTx) Commit(ctx context.Context) error {
	if err := t.ExecutorTx.Commit(ctx); err != nil {
		return err
	}
	if t.own != nil && !t.nested {
		t.d.s.committed(t.own)
	}
	return nil
}

func (t *wakeTx) Rollback(ctx context.Context) error {
	if t.own != nil && !t.nested {
		t.own.take()
	}
	return t.ExecutorTx.Rollback(ctx)
}

func queueOf(payload string) string {
	var p struct {
		Queue string `json:"queue"`
	}
	_ = json.Unmarshal([]byte(payload), &p)
	return p.Queue
}

func originOf(payload string) string {
	var p struct {
		Origin string `json:"crmkit_origin"`
	}
	_ = json.Unmarshal([]byte(payload), &p)
	return p.Origin
}

// wakeListener is the listener River's notifier runs: notifications posted
// in process, and on Postgres those of a LISTEN connection.
type wakeListener struct {
	s      *Store
	schema string
	origin string

	mu      sync.Mutex
	pending []riverdriver.Notification
	ready   chan struct{} // signalled when pending gains an entry
	// interrupt cancels a wait on the connection, so a notification posted
	// in process is not held up behind it.
	interrupt func()

	// connMu serialises use of conn, which River's notifier already does
	// (it interrupts a wait before it listens or pings).
	connMu sync.Mutex
	conn   *pgx.Conn
	prefix string
}

func (l *wakeListener) deliver(ns []riverdriver.Notification) {
	l.mu.Lock()
	for _, n := range ns {
		if !slices.Contains(l.pending, n) {
			l.pending = append(l.pending, n)
		}
	}
	interrupt := l.interrupt
	l.interrupt = nil
	l.mu.Unlock()
	select {
	case l.ready <- struct{}{}:
	default:
	}
	if interrupt != nil {
		interrupt()
	}
}

func (l *wakeListener) Connect(ctx context.Context) error {
	l.s.wake.add(l)
	if l.s.dialect != DialectPostgres {
		return nil
	}
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.conn != nil {
		return errors.New("store: listener already connected")
	}
	cfg, err := l.s.pgConnConfig(ctx)
	if err != nil {
		return err
	}
	// Its own connection, outside the pool: a LISTEN lasts as long as the
	// session, and the session is held for as long as the listener runs.
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("store: listener connect: %w", err)
	}
	schema := l.schema
	if schema == "" {
		if err := conn.QueryRow(ctx, "SELECT coalesce(current_schema(), '')").Scan(&schema); err != nil {
			_ = conn.Close(ctx)
			return fmt.Errorf("store: listener schema: %w", err)
		}
	}
	l.prefix = ""
	if schema != "" {
		l.prefix = schema + "."
	}
	l.conn = conn
	return nil
}

// pgConnConfig answers the configuration of the store's Postgres
// connections.
func (s *Store) pgConnConfig(ctx context.Context) (*pgx.ConnConfig, error) {
	c, err := s.sqldb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: listener config: %w", err)
	}
	defer c.Close()
	var cfg *pgx.ConnConfig
	err = c.Raw(func(dc any) error {
		pc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: listener config: unexpected driver connection %T", dc)
		}
		cfg = pc.Conn().Config()
		// The copy still names that connection's notification buffer;
		// pgx installs the new connection's own when this is nil.
		cfg.OnNotification = nil
		return nil
	})
	return cfg, err
}

func (l *wakeListener) Close(ctx context.Context) error {
	l.s.wake.remove(l)
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close(ctx)
	l.conn = nil
	return err
}

func (l *wakeListener) Listen(ctx context.Context, topic string) error {
	return l.exec(ctx, "LISTEN "+pgx.Identifier{l.prefix + topic}.Sanitize())
}

func (l *wakeListener) Unlisten(ctx context.Context, topic string) error {
	return l.exec(ctx, "UNLISTEN "+pgx.Identifier{l.prefix + topic}.Sanitize())
}

func (l *wakeListener) exec(ctx context.Context, q string) error {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.conn == nil {
		return nil
	}
	_, err := l.conn.Exec(ctx, q)
	return err
}

func (l *wakeListener) Ping(ctx context.Context) error {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	if l.conn == nil {
		return nil
	}
	return l.conn.Ping(ctx)
}

func (l *wakeListener) Schema() string {
	return strings.TrimSuffix(l.prefix, ".")
}

func (l *wakeListener) SetAfterConnectExec(string) {}

// WaitForNotification answers the next notification: one posted in
// process, or one from the connection. A wait on the connection is
// interrupted when a notification is posted in process.
func (l *wakeListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	for {
		l.mu.Lock()
		if len(l.pending) > 0 {
			n := l.pending[0]
			l.pending = l.pending[1:]
			l.mu.Unlock()
			return &n, nil
		}
		l.connMu.Lock()
		conn := l.conn
		if conn == nil {
			l.connMu.Unlock()
			l.mu.Unlock()
			select {
			case <-l.ready:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		waitCtx, cancel := context.WithCancel(ctx)
		l.interrupt = cancel
		l.mu.Unlock()
		pn, err := conn.WaitForNotification(waitCtx)
		l.connMu.Unlock()
		l.mu.Lock()
		l.interrupt = nil
		l.mu.Unlock()
		interrupted := waitCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil {
			if interrupted {
				continue
			}
			return nil, err
		}
		topic := strings.TrimPrefix(pn.Channel, l.prefix)
		if topic == wakeTopicInsert && originOf(pn.Payload) == l.origin {
			continue // announced in process already
		}
		return &riverdriver.Notification{Topic: topic, Payload: pn.Payload}, nil
	}
}
