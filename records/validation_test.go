package records_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/internal/testdb"
	"github.com/smartlite/crmkit/records"
)

const accountID = "rec_01jq8n0b4h5xk2m3n4p5q6r7s8"

// invoiceObject is a host-defined object using every field type, picklist
// options that validator's oneof can spell only escaped ("S, small",
// "M|medium") or not at all ("Won't fix"), and a unique field.
func invoiceObject() records.Object {
	ten, million := 10.0, 1e6
	return records.Object{Name: "invoice", ExternalID: "number", Fields: []records.Field{
		{Name: "number", Type: records.TypeString},
		{Name: "lines", Type: records.TypeInteger, Required: true},
		{Name: "paid", Type: records.TypeBoolean},
		{Name: "due_at", Type: records.TypeDateTime},
		{Name: "note", Type: records.TypeText, Max: &ten},
		{Name: "priority", Type: records.TypePicklist, Options: []string{"Won't fix", "Later"}},
		{Name: "size", Type: records.TypePicklist, Options: []string{"S, small", "M|medium"}},
		{Name: "total", Type: records.TypeNumber, Max: &million},
		{Name: "code", Type: records.TypeString, Unique: true},
		{Name: "account_id", Type: records.TypeReference, Reference: "account"},
	}}
}

func allObjects() []records.Object {
	return append(records.DefaultObjects(), invoiceObject())
}

type validationCase struct {
	name   string
	object string
	fields records.Fields
	// want is the stored form of valid input; errs the failing fields'
	// codes of invalid input.
	want records.Fields
	errs map[string]string
}

var validationCases = []validationCase{
	{
		name: "opportunity valid, normalised", object: "opportunity",
		fields: records.Fields{"name": "  Big deal ", "amount": 1200.5, "stage": "Closed Won", "close_date": "2025-06-30",
			"probability": 40.0, "account_id": accountID, "external_id": "SF-1"},
		want: records.Fields{"name": "Big deal", "amount": 1200.5, "stage": "Closed Won", "close_date": "2025-06-30",
			"probability": 40.0, "account_id": accountID, "external_id": "SF-1"},
	},
	{
		name: "opportunity numbers as text and Go ints", object: "opportunity",
		fields: records.Fields{"name": "n", "amount": "99.5", "probability": 7, "close_date": ""},
		want:   records.Fields{"name": "n", "amount": 99.5, "probability": 7.0},
	},
	{name: "opportunity name required", object: "opportunity", fields: records.Fields{"amount": 1.0},
		errs: map[string]string{"name": "required"}},
	{name: "opportunity blank name is missing", object: "opportunity", fields: records.Fields{"name": "   "},
		errs: map[string]string{"name": "required"}},
	{name: "opportunity name too long", object: "opportunity", fields: records.Fields{"name": strings.Repeat("x", 256)},
		errs: map[string]string{"name": "max"}},
	{name: "opportunity name with NUL", object: "opportunity", fields: records.Fields{"name": "a\x00b"},
		errs: map[string]string{"name": "invalid_type"}},
	{name: "opportunity amount below 0", object: "opportunity", fields: records.Fields{"name": "n", "amount": -0.01},
		errs: map[string]string{"amount": "min"}},
	{name: "opportunity amount not a number", object: "opportunity", fields: records.Fields{"name": "n", "amount": "lots"},
		errs: map[string]string{"amount": "invalid_type"}},
	{name: "opportunity stage not an option", object: "opportunity", fields: records.Fields{"name": "n", "stage": "Won"},
		errs: map[string]string{"stage": "one_of"}},
	{name: "opportunity stage wrong type", object: "opportunity", fields: records.Fields{"name": "n", "stage": true},
		errs: map[string]string{"stage": "invalid_type"}},
	{name: "opportunity close_date not a date", object: "opportunity", fields: records.Fields{"name": "n", "close_date": "30/06/2025"},
		errs: map[string]string{"close_date": "date"}},
	{name: "opportunity close_date impossible", object: "opportunity", fields: records.Fields{"name": "n", "close_date": "2025-02-30"},
		errs: map[string]string{"close_date": "date"}},
	{name: "opportunity closed_at read-only", object: "opportunity", fields: records.Fields{"name": "n", "closed_at": "2025-01-01T00:00:00Z"},
		errs: map[string]string{"closed_at": "read_only"}},
	{name: "opportunity probability fractional", object: "opportunity", fields: records.Fields{"name": "n", "probability": 40.5},
		errs: map[string]string{"probability": "invalid_type"}},
	{name: "opportunity probability above 100", object: "opportunity", fields: records.Fields{"name": "n", "probability": 101.0},
		errs: map[string]string{"probability": "max"}},
	{name: "opportunity probability below 0", object: "opportunity", fields: records.Fields{"name": "n", "probability": -1},
		errs: map[string]string{"probability": "min"}},
	{name: "opportunity account_id not a record id", object: "opportunity", fields: records.Fields{"name": "n", "account_id": "acc_1"},
		errs: map[string]string{"account_id": "reference"}},
	{name: "opportunity external_id wrong type", object: "opportunity", fields: records.Fields{"name": "n", "external_id": 12.0},
		errs: map[string]string{"external_id": "invalid_type"}},
	{name: "opportunity unknown field", object: "opportunity", fields: records.Fields{"name": "n", "colour": "red"},
		errs: map[string]string{"colour": "unknown_field"}},
	{
		name: "opportunity every field failing at once", object: "opportunity",
		fields: records.Fields{"amount": -5.0, "stage": "Won", "close_date": "tomorrow", "closed_at": "2025-01-01T00:00:00Z",
			"probability": 200.0, "account_id": "x", "external_id": false, "colour": "red"},
		errs: map[string]string{"name": "required", "amount": "min", "stage": "one_of", "close_date": "date", "closed_at": "read_only",
			"probability": "max", "account_id": "reference", "external_id": "invalid_type", "colour": "unknown_field"},
	},

	{
		name: "account valid", object: "account",
		fields: records.Fields{"name": "Acme", "website": "https://acme.example/about", "industry": "Retail", "external_id": "A-1"},
		want:   records.Fields{"name": "Acme", "website": "https://acme.example/about", "industry": "Retail", "external_id": "A-1"},
	},
	{name: "account name required", object: "account", fields: records.Fields{"website": "https://acme.example"},
		errs: map[string]string{"name": "required"}},
	{name: "account website not a URL", object: "account", fields: records.Fields{"name": "a", "website": "acme"},
		errs: map[string]string{"website": "url"}},
	{name: "account website javascript", object: "account", fields: records.Fields{"name": "a", "website": "javascript:alert(1)"},
		errs: map[string]string{"website": "url"}},
	{name: "account industry wrong type", object: "account", fields: records.Fields{"name": "a", "industry": 3.0},
		errs: map[string]string{"industry": "invalid_type"}},
	{name: "account unknown field", object: "account", fields: records.Fields{"name": "a", "stage": "Proposal"},
		errs: map[string]string{"stage": "unknown_field"}},

	{
		name: "contact valid", object: "contact",
		fields: records.Fields{"first_name": "Ada", "last_name": "Lovelace", "email": " ada@example.com ", "phone": "+44 20 7946 0000",
			"account_id": accountID, "external_id": "C-1"},
		want: records.Fields{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000",
			"account_id": accountID, "external_id": "C-1"},
	},
	{name: "contact names required", object: "contact", fields: records.Fields{"email": "ada@example.com"},
		errs: map[string]string{"first_name": "required", "last_name": "required"}},
	{name: "contact email invalid", object: "contact", fields: records.Fields{"first_name": "a", "last_name": "b", "email": "ada@"},
		errs: map[string]string{"email": "email"}},
	{name: "contact phone wrong type", object: "contact", fields: records.Fields{"first_name": "a", "last_name": "b", "phone": 123.0},
		errs: map[string]string{"phone": "invalid_type"}},
	{name: "contact account_id invalid", object: "contact", fields: records.Fields{"first_name": "a", "last_name": "b", "account_id": "rec_short"},
		errs: map[string]string{"account_id": "reference"}},
	{name: "contact unknown field", object: "contact", fields: records.Fields{"first_name": "a", "last_name": "b", "mobile": "1"},
		errs: map[string]string{"mobile": "unknown_field"}},

	{
		name: "lead valid", object: "lead",
		fields: records.Fields{"name": "Bo", "company": "Initech", "email": "bo@initech.example", "status": "Contacted", "external_id": "L-1"},
		want:   records.Fields{"name": "Bo", "company": "Initech", "email": "bo@initech.example", "status": "Contacted", "external_id": "L-1"},
	},
	{name: "lead name required", object: "lead", fields: records.Fields{"company": "Initech"},
		errs: map[string]string{"name": "required"}},
	{name: "lead status not an option", object: "lead", fields: records.Fields{"name": "Bo", "status": "Hot"},
		errs: map[string]string{"status": "one_of"}},
	{name: "lead email invalid", object: "lead", fields: records.Fields{"name": "Bo", "email": "bo at initech"},
		errs: map[string]string{"email": "email"}},
	{name: "lead company wrong type", object: "lead", fields: records.Fields{"name": "Bo", "company": []any{"x"}},
		errs: map[string]string{"company": "invalid_type"}},

	{
		name: "host object valid, coerced", object: "invoice",
		fields: records.Fields{"number": "INV-1", "lines": "3", "paid": "true", "due_at": "2025-06-30T12:00:00+02:00", "note": "thanks",
			"priority": "Won't fix", "size": "S, small", "total": 10, "code": "X", "account_id": accountID},
		want: records.Fields{"number": "INV-1", "lines": 3.0, "paid": true, "due_at": "2025-06-30T10:00:00Z", "note": "thanks",
			"priority": "Won't fix", "size": "S, small", "total": 10.0, "code": "X", "account_id": accountID},
	},
	{name: "host object pipe option", object: "invoice", fields: records.Fields{"lines": 1, "size": "M|medium"},
		want: records.Fields{"lines": 1.0, "size": "M|medium"}},
	{
		name: "host object every field failing", object: "invoice",
		fields: records.Fields{"number": 5, "paid": "maybe", "due_at": "2025-06-30 12:00", "note": "far too long a note",
			"priority": "Won", "size": "S", "total": 2e6, "code": false, "account_id": "rec_", "extra": 1},
		errs: map[string]string{"number": "invalid_type", "lines": "required", "paid": "invalid_type", "due_at": "datetime",
			"note": "max", "priority": "one_of", "size": "one_of", "total": "max", "code": "invalid_type",
			"account_id": "reference", "extra": "unknown_field"},
	},
	{name: "unknown object", object: "widget", fields: records.Fields{"name": "w"}},
}

func checkValidation(t *testing.T, create func(object string, fields records.Fields) (records.Fields, error)) {
	for _, tc := range validationCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := create(tc.object, tc.fields)
			switch {
			case tc.want == nil && tc.errs == nil:
				require.ErrorIs(t, err, records.ErrNotFound)
			case tc.errs != nil:
				require.Equal(t, tc.errs, fieldCodes(t, err))
			default:
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestValidator(t *testing.T) {
	vd, err := records.NewValidator(allObjects())
	require.NoError(t, err)
	checkValidation(t, vd.Validate)
}

// TestPipelineValidation runs the same table through Create: the pipeline
// validates exactly as the Validator does, stores what it normalised, and
// writes nothing for invalid input.
func TestPipelineValidation(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{Objects: allObjects()}, "enterprise")
		ctx := context.Background()
		checkValidation(t, func(object string, fields records.Fields) (records.Fields, error) {
			rec, err := e.p.Create(ctx, records.Write{Workspace: e.ws, Object: object, Fields: fields})
			if err != nil {
				return nil, err
			}
			got, err := e.p.Get(ctx, e.ws, object, rec.ID)
			require.NoError(t, err)
			require.Equal(t, rec, got)
			return got.Fields, nil
		})
		valid := 0
		for _, tc := range validationCases {
			if tc.want != nil {
				valid++
			}
		}
		require.Equal(t, valid, e.count(t, "records"))
		require.Equal(t, valid, e.count(t, "events"))
	})
}

func TestUpdateValidation(t *testing.T) {
	testdb.Dialects(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, records.Config{Rules: []records.Rule{records.ClosedWonRule()}}, "enterprise")
		ctx := context.Background()
		rec, err := e.p.Create(ctx, e.opp(records.Fields{"name": "Deal", "stage": "Closed Won"}))
		require.NoError(t, err)
		closedAt := rec.Fields["closed_at"]
		require.NotNil(t, closedAt)

		upd := func(fields records.Fields) (*records.Record, error) {
			w := e.opp(fields)
			w.ID = rec.ID
			return e.p.Update(ctx, w)
		}
		_, err = upd(records.Fields{"name": nil})
		require.Equal(t, map[string]string{"name": "required"}, fieldCodes(t, err))
		_, err = upd(records.Fields{"closed_at": "2020-01-01T00:00:00Z", "stage": "Nope"})
		require.Equal(t, map[string]string{"closed_at": "read_only", "stage": "one_of"}, fieldCodes(t, err))

		// Sending back the record as read, read-only field included, is fine.
		got, err := upd(rec.Fields)
		require.NoError(t, err)
		require.Equal(t, rec.Version, got.Version)
		got, err = upd(records.Fields{"name": "Deal 2", "closed_at": closedAt})
		require.NoError(t, err)
		require.Equal(t, rec.Version+1, got.Version)
		require.Equal(t, closedAt, got.Fields["closed_at"])
	})
}

func TestNewPipelineRejectsBadConfig(t *testing.T) {
	st := newEnv(t, testdb.SQLiteDSN(t), records.Config{}, "starter").st
	bad := func(mut func(*records.Object)) []records.Object {
		o := invoiceObject()
		mut(&o)
		return append(records.DefaultObjects(), o)
	}
	neg := -1.0
	tests := []struct {
		name string
		cfg  records.Config
	}{
		{"no store", records.Config{}},
		{"unknown type", records.Config{Objects: bad(func(o *records.Object) { o.Fields[1].Type = "money" })}},
		{"picklist without options", records.Config{Objects: bad(func(o *records.Object) { o.Fields[5].Options = nil })}},
		{"reference to unknown object", records.Config{Objects: bad(func(o *records.Object) { o.Fields[9].Reference = "planet" })}},
		{"external id not a field", records.Config{Objects: bad(func(o *records.Object) { o.ExternalID = "nope" })}},
		{"external id not a string", records.Config{Objects: bad(func(o *records.Object) { o.ExternalID = "lines" })}},
		{"negative length", records.Config{Objects: bad(func(o *records.Object) { o.Fields[4].Max = &neg })}},
		{"duplicate field", records.Config{Objects: bad(func(o *records.Object) { o.Fields[1].Name = "number" })}},
		{"duplicate object", records.Config{Objects: append(records.DefaultObjects(), records.DefaultObjects()[0])}},
		{"rule on unknown object", records.Config{Rules: []records.Rule{{Name: "r", Object: "planet", On: []records.Trigger{records.TriggerCreated},
			Do: func(context.Context, *records.RuleContext) error { return nil }}}}},
		{"rule without action", records.Config{Rules: []records.Rule{{Name: "r", Object: "lead", On: []records.Trigger{records.TriggerCreated}}}}},
		{"rule without trigger", records.Config{Rules: []records.Rule{{Name: "r", Object: "lead",
			Do: func(context.Context, *records.RuleContext) error { return nil }}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "no store" {
				tc.cfg.Store = st
			}
			_, err := records.NewPipeline(tc.cfg)
			require.Error(t, err)
		})
	}
}
