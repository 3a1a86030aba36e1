package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smartlite/crmkit/apikey"
	"github.com/smartlite/crmkit/records"
	"github.com/smartlite/crmkit/store"
)

// servedUsage is the help of what a running server answers on its
// listener.
const servedUsage = `Served on the listener:

  /api/v1/...            the REST API (OpenAPI document: /api/v1/openapi.json);
                         GET /api/v1/events is the event feed in commit order
  /                      the admin console: sign in with an ADMIN key
  GET /metrics           Prometheus metrics, without a key: keep it from the
                         public internet at the proxy in front
  GET /healthz           liveness: the database answers
  GET /readyz            readiness: the database answers and jobs run
`

// operatorUsage is the help of the operator commands, which work on the
// same database as the servers, running or not.
const operatorUsage = `Operator commands (each takes -db, env CRMKIT_DB, like the server):

  server workspace create --name NAME [--plan starter|pro|enterprise]
  server workspace list
  server workspace set-plan --workspace ID --plan PLAN
  server key create --workspace ID --name NAME --scopes READ,WRITE[,DELETE,BULK,ADMIN] [--expires-in 720h]
  server migrate
  server secrets rotate-key --old-key-file OLD --new-key-file NEW

A plan change reaches running servers within their plan cache lifetime (2 s).
key create prints the new key once; it is stored only as a hash.
secrets rotate-key re-seals every secret in the database under NEW (made,
mode 0600, when the file does not exist) in one transaction; start the
servers with -secret-key-file NEW afterwards.
`

// operatorCommands maps "command subcommand" to its function.
var operatorCommands = map[string]func(ctx context.Context, st *store.Store, args []string, stdout io.Writer) error{
	"workspace create":   workspaceCreate,
	"workspace list":     workspaceList,
	"workspace set-plan": workspaceSetPlan,
	"key create":         keyCreate,
	"migrate":            func(context.Context, *store.Store, []string, io.Writer) error { return nil },
}

// isOperatorCommand reports whether args start with an operator command.
func isOperatorCommand(args []string) bool {
	return len(args) > 0 && (args[0] == "workspace" || args[0] == "key" || args[0] == "migrate" || args[0] == "secrets")
}

// operate runs one operator command and answers the exit code.
func operate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	name := args[0]
	rest := args[1:]
	if name != "migrate" {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprintf(stderr, "server %s: a subcommand is needed\n\n%s", name, operatorUsage)
			return 2
		}
		name, rest = name+" "+rest[0], rest[1:]
	}
	cmd, ok := operatorCommands[name]
	keyCmd, isKeyCmd := secretKeyCommands[name]
	if !ok && !isKeyCmd {
		fmt.Fprintf(stderr, "server: unknown command %q\n\n%s", name, operatorUsage)
		return 2
	}
	db, rest, err := dbFlag(name, rest, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "server "+name+":", err)
		return 2
	}
	if isKeyCmd {
		// It opens the store itself, with the keys it reads.
		if err := keyCmd(ctx, db, rest, stdout); err != nil {
			fmt.Fprintln(stderr, "server "+name+":", err)
			if errors.As(err, new(usageError)) {
				return 2
			}
			return 1
		}
		return 0
	}
	// Opening the store applies any migration not yet applied, which is all
	// that migrate does.
	st, err := store.Open(ctx, db)
	if err != nil {
		fmt.Fprintln(stderr, "server "+name+":", err)
		return 1
	}
	defer st.Close()
	if err := cmd(ctx, st, rest, stdout); err != nil {
		fmt.Fprintln(stderr, "server "+name+":", err)
		var usage usageError
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	if name == "migrate" {
		names, _ := store.Migrations(st.Dialect())
		fmt.Fprintf(stdout, "database is up to date (%d migrations)\n", len(names))
	}
	return 0
}

// usageError is a command line mistake: exit code 2.
type usageError struct{ error }

// dbFlag takes -db (env CRMKIT_DB, default crmkit.db) from the front of the
// command's flags and answers the rest.
func dbFlag(name string, args []string, getenv func(string) string, stderr io.Writer) (string, []string, error) {
	var db string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-db" || a == "--db":
			if i+1 == len(args) {
				return "", nil, errors.New("-db needs a value")
			}
			db = args[i+1]
			i++
		case strings.HasPrefix(a, "-db=") || strings.HasPrefix(a, "--db="):
			db = a[strings.Index(a, "=")+1:]
		case a == "-h" || a == "-help" || a == "--help":
			fmt.Fprint(stderr, operatorUsage)
			return "", nil, flag.ErrHelp
		default:
			rest = append(rest, a)
		}
	}
	if db == "" {
		db = getenv("CRMKIT_DB")
	}
	if db == "" {
		db = "crmkit.db"
	}
	return db, rest, nil
}

// parseFlags parses a subcommand's own flags, all required unless given a
// default.
func parseFlags(fs *flag.FlagSet, args []string, required ...string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return usageError{fmt.Errorf("--%s is required", name)}
		}
	}
	return nil
}

func workspaceCreate(ctx context.Context, st *store.Store, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("workspace create", flag.ContinueOnError)
	name := fs.String("name", "", "the workspace's name")
	plan := fs.String("plan", records.PlanStarter, "its plan")
	if err := parseFlags(fs, args, "name"); err != nil {
		return err
	}
	plans, err := records.NewPlans(st, nil, -1)
	if err != nil {
		return err
	}
	if _, ok := plans.Lookup(*plan); !ok {
		return usageError{fmt.Errorf("plan %q is not one of %s", *plan, planNames(plans))}
	}
	w := &records.Workspace{Name: *name, Plan: *plan}
	if err := st.CreateWorkspace(ctx, w); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", w.ID)
	return nil
}

func workspaceList(ctx context.Context, st *store.Store, args []string, stdout io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("workspace list", flag.ContinueOnError), args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPLAN\tCREATED")
	after := ""
	for {
		ws, err := st.ListWorkspaces(ctx, after, 200)
		if err != nil {
			return err
		}
		for _, w := range ws {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, w.Name, w.Plan, w.CreatedAt.Format(time.RFC3339))
			after = w.ID
		}
		if len(ws) < 200 {
			return tw.Flush()
		}
	}
}

func workspaceSetPlan(ctx context.Context, st *store.Store, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("workspace set-plan", flag.ContinueOnError)
	ws := fs.String("workspace", "", "the workspace's id")
	plan := fs.String("plan", "", "its new plan")
	if err := parseFlags(fs, args, "workspace", "plan"); err != nil {
		return err
	}
	plans, err := records.NewPlans(st, nil, -1)
	if err != nil {
		return err
	}
	if err := plans.Set(ctx, *ws, *plan); err != nil {
		var verr *records.ValidationError
		if errors.As(err, &verr) {
			return usageError{fmt.Errorf("plan %q is not one of %s", *plan, planNames(plans))}
		}
		return err
	}
	fmt.Fprintf(stdout, "%s is now on plan %s\n", *ws, *plan)
	return nil
}

func keyCreate(ctx context.Context, st *store.Store, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("key create", flag.ContinueOnError)
	ws := fs.String("workspace", "", "the workspace's id")
	name := fs.String("name", "", "the key's name")
	scopeList := fs.String("scopes", "", "comma-separated scopes")
	expiresIn := fs.Duration("expires-in", 0, "expire the key after this long (0: never)")
	if err := parseFlags(fs, args, "workspace", "name", "scopes"); err != nil {
		return err
	}
	var in []apikey.Scope
	for _, sc := range strings.Split(*scopeList, ",") {
		in = append(in, apikey.Scope(strings.ToUpper(strings.TrimSpace(sc))))
	}
	scopes, err := apikey.NormalizeScopes(in)
	if err != nil {
		return usageError{err}
	}
	if _, err := st.GetWorkspace(ctx, *ws); err != nil {
		return err
	}
	keys, err := apikey.New(apikey.Config{Store: st})
	if err != nil {
		return err
	}
	var expires *time.Time
	if *expiresIn > 0 {
		t := time.Now().Add(*expiresIn).UTC()
		expires = &t
	}
	k, plain, err := keys.Create(ctx, *ws, *name, scopes, expires)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Created key %s (%s) for workspace %s. It is shown only this once:\n\n    %s\n\n", k.ID, strings.Join(scopeStrings(k.Scopes), ","), *ws, plain)
	return nil
}

func planNames(p *records.Plans) string {
	var names []string
	for _, pl := range p.Catalog() {
		names = append(names, pl.Name)
	}
	return strings.Join(names, ", ")
}

func scopeStrings(scopes []apikey.Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}
