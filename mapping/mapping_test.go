package mapping_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// schema is the default objects plus "sample", which has no external id
// and a field of every type.
func schema(tb testing.TB) *records.Validator {
	tb.Helper()
	objs := append(records.DefaultObjects(), records.Object{
		Name: "sample",
		Fields: []records.Field{
			{Name: "s", Type: records.TypeString},
			{Name: "text", Type: records.TypeText},
			{Name: "n", Type: records.TypeNumber},
			{Name: "i", Type: records.TypeInteger},
			{Name: "b", Type: records.TypeBoolean},
			{Name: "d", Type: records.TypeDate},
			{Name: "dt", Type: records.TypeDateTime},
			{Name: "p", Type: records.TypePicklist, Options: []string{"x", "y"}},
			{Name: "account", Type: records.TypeReference, Reference: "account"},
			{Name: "any_ref", Type: records.TypeReference},
		},
	})
	vd, err := records.NewValidator(objs)
	require.NoError(tb, err)
	return vd
}

// one compiles a mapping of one field of the sample object.
func one(tb testing.TB, fieldName, expression string) *mapping.Mapping {
	tb.Helper()
	m, err := mapping.Compile(mapping.Spec{Targets: []mapping.Target{{
		Object: "sample", Fields: map[string]string{fieldName: expression},
	}}}, schema(tb))
	require.NoError(tb, err)
	return m
}

func TestCompileRefusesWithProblems(t *testing.T) {
	long := "'" + strings.Repeat("a", 5000) + "'"
	tests := []struct {
		name string
		spec mapping.Spec
		want []mapping.Problem // Message is not compared
	}{
		{"no targets", mapping.Spec{}, []mapping.Problem{{Target: -1, Path: "/targets", Code: "no_targets"}}},
		{"unknown object", mapping.Spec{Targets: []mapping.Target{
			{Object: "account", Fields: map[string]string{"name": "'a'"}},
			{Object: "invoice", Fields: map[string]string{"total": "1"}},
		}}, []mapping.Problem{{Target: 1, Object: "invoice", Path: "/targets/1/object", Code: "unknown_object"}}},
		{"unknown and read-only fields", mapping.Spec{Targets: []mapping.Target{
			{Object: "opportunity", Fields: map[string]string{"name": "'a'", "colour": "'red'", "closed_at": "now()", "a/b": "1"}},
		}}, []mapping.Problem{
			{Target: 0, Object: "opportunity", Field: "a/b", Path: "/targets/0/fields/a~1b", Code: "unknown_field"},
			{Target: 0, Object: "opportunity", Field: "closed_at", Path: "/targets/0/fields/closed_at", Code: "read_only"},
			{Target: 0, Object: "opportunity", Field: "colour", Path: "/targets/0/fields/colour", Code: "unknown_field"},
		}},
		{"syntax, empty and too long", mapping.Spec{Targets: []mapping.Target{
			{Object: "account", ExternalID: "'x' +", Fields: map[string]string{"name": " ", "industry": long, "website": "lower(("}},
		}}, []mapping.Problem{
			{Target: 0, Object: "account", Field: "external_id", Path: "/targets/0/external_id", Code: "compile"},
			{Target: 0, Object: "account", Field: "industry", Path: "/targets/0/fields/industry", Code: "too_long"},
			{Target: 0, Object: "account", Field: "name", Path: "/targets/0/fields/name", Code: "empty"},
			{Target: 0, Object: "account", Field: "website", Path: "/targets/0/fields/website", Code: "compile"},
		}},
		{"disabled builtins and unknown functions", mapping.Spec{Targets: []mapping.Target{
			{Object: "account", ExternalID: "id()", Fields: map[string]string{"name": "repeat('a', 3)", "industry": "toJSON(tags)", "website": "lower(fetch('http://x'))"}},
		}}, []mapping.Problem{
			{Target: 0, Object: "account", Field: "external_id", Path: "/targets/0/external_id", Code: "unknown_function"},
			{Target: 0, Object: "account", Field: "industry", Path: "/targets/0/fields/industry", Code: "unknown_function"},
			{Target: 0, Object: "account", Field: "name", Path: "/targets/0/fields/name", Code: "unknown_function"},
			{Target: 0, Object: "account", Field: "website", Path: "/targets/0/fields/website", Code: "unknown_function"},
		}},
		{"external id for an object without one, and the external id field twice", mapping.Spec{Targets: []mapping.Target{
			{Object: "sample", ExternalID: "string(id)", Fields: map[string]string{"s": "'a'"}},
			{Object: "account", ExternalID: "string(id)", Fields: map[string]string{"name": "'a'", "external_id": "string(id)"}},
		}}, []mapping.Problem{
			{Target: 0, Object: "sample", Field: "external_id", Path: "/targets/0/external_id", Code: "no_external_id"},
			{Target: 1, Object: "account", Field: "external_id", Path: "/targets/1/fields/external_id", Code: "external_id_field"},
		}},
		{"refs", mapping.Spec{Targets: []mapping.Target{
			{Object: "sample", Fields: map[string]string{
				"account": "ref('contact', 'x')",       // not the object the field refers to
				"any_ref": "ref('invoice', 'x')",       // unknown object
				"s":       "ref('account', 'x')",       // not a reference field
				"n":       "ref(kind, 'x')",            // object not a literal
				"text":    "trim(string(ref('a', 1)))", // nested, still checked
			}},
			{Object: "account", ExternalID: "ref('account', 'x')", Fields: map[string]string{"name": "'a'"}},
		}}, []mapping.Problem{
			{Target: 0, Object: "sample", Field: "account", Path: "/targets/0/fields/account", Code: "ref"},
			{Target: 0, Object: "sample", Field: "any_ref", Path: "/targets/0/fields/any_ref", Code: "ref"},
			{Target: 0, Object: "sample", Field: "n", Path: "/targets/0/fields/n", Code: "ref"},
			{Target: 0, Object: "sample", Field: "s", Path: "/targets/0/fields/s", Code: "ref"},
			{Target: 0, Object: "sample", Field: "text", Path: "/targets/0/fields/text", Code: "ref"},
			{Target: 1, Object: "account", Field: "external_id", Path: "/targets/1/external_id", Code: "ref"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mapping.Compile(tt.spec, schema(t))
			require.Nil(t, m)
			require.ErrorIs(t, err, mapping.ErrInvalidMapping)
			var ce *mapping.CompileError
			require.ErrorAs(t, err, &ce)
			got := make([]mapping.Problem, len(ce.Problems))
			for i, p := range ce.Problems {
				require.NotEmpty(t, p.Message, "problem %d", i)
				p.Message = ""
				got[i] = p
			}
			require.Equal(t, tt.want, got)
			for _, p := range tt.want {
				if p.Field != "" {
					require.Contains(t, err.Error(), fmt.Sprintf("target %d (%s) %s:", p.Target, p.Object, p.Field))
				}
			}
		})
	}
}

func TestCompileNeedsObjects(t *testing.T) {
	_, err := mapping.Compile(mapping.Spec{Targets: []mapping.Target{{Object: "account"}}}, nil)
	require.Error(t, err)
}

func TestBigNumbersKeepTheirDigits(t *testing.T) {
	doc := []byte(`{"id": 820982911946154508, "huge": 123456789012345678901234567890, "neg": -9007199254740993,
		"price": 199.65, "exp": 1e3, "small": 42}`)
	tests := []struct {
		field, expr string
		want        any
	}{
		{"s", "string(id)", "820982911946154508"},
		{"s", "'shopify-' + string(id)", "shopify-820982911946154508"},
		{"s", "id", "820982911946154508"}, // a number into a text field: its digits
		{"text", "string(huge)", "123456789012345678901234567890"},
		{"s", "huge", "123456789012345678901234567890"},
		{"s", "string(neg)", "-9007199254740993"},
		{"s", "string(id + 1)", "820982911946154509"}, // integer arithmetic stays exact
		{"s", "string(price)", "199.65"},
		{"s", "string(exp)", "1000"},
		{"n", "id", float64(820982911946154508)},
		{"n", "huge", 1.2345678901234568e29},
		{"n", "float(huge)", 1.2345678901234568e29},
		{"n", "price", 199.65},
		{"i", "small", float64(42)},
		{"i", "int('17')", float64(17)},
		{"i", "int(price)", float64(199)},
		{"i", "int(' -3.9 ')", float64(-3)},
		{"n", "float('199.65')", 199.65},
		{"n", "small / 8", 5.25},
		{"b", "small > 40", true},
		{"s", "small > 40", "true"},
		{"p", "small > 40 ? 'x' : 'y'", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			outs, err := one(t, tt.field, tt.expr).Apply(doc)
			require.NoError(t, err)
			require.Equal(t, records.Fields{tt.field: tt.want}, outs[0].Fields)
		})
	}
}

func TestNullAndMissingLeaveTheFieldOut(t *testing.T) {
	tests := []struct {
		name, doc, expr string
		want            any // nil: the field is left out
	}{
		{"missing", `{}`, "name", nil},
		{"null", `{"name": null}`, "name", nil},
		{"missing parent", `{}`, "customer.first_name", nil},
		{"null parent", `{"customer": null}`, "customer.first_name", nil},
		{"concatenation with a missing part", `{"customer": {"first_name": "Jo"}}`, "customer.first_name + ' ' + customer.last_name", nil},
		{"helpers pass nil on", `{}`, "upper(trim(string(customer.email)))", nil},
		{"index past the end", `{"items": []}`, "items[0].sku", nil},
		{"negative index", `{"items": [{"sku": "a"}, {"sku": "b"}]}`, "items[-1].sku", "b"},
		{"optional chaining", `{}`, "customer?.first_name", nil},
		{"default", `{}`, "customer.first_name ?? 'Unknown'", "Unknown"},
		{"present", `{"customer": {"first_name": "Jo"}}`, "customer.first_name", "Jo"},
		{"empty date is no date", `{"closed": ""}`, "date(closed)", nil},
		{"nil literal", `{}`, "nil", nil},
		{"let of a missing path", `{}`, "let c = customer; c.first_name + '!'", nil},
		{"predicate over a missing member", `{"items": [{"p": 1}, {}]}`, "string(sum(map(items, .p)))", nil},
		{"predicate", `{"items": [{"p": 1}, {"p": 2.5}]}`, "string(sum(map(items, .p)))", "3.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, err := one(t, "s", tt.expr).Apply([]byte(tt.doc))
			require.NoError(t, err)
			if tt.want == nil {
				require.NotContains(t, outs[0].Fields, "s")
				require.Empty(t, outs[0].Fields)
				return
			}
			require.Equal(t, tt.want, outs[0].Fields["s"])
		})
	}
}

func TestHelpers(t *testing.T) {
	doc := []byte(`{"created_at": "2024-03-01T23:30:00-05:00", "plain": "2024-03-01 08:15:00", "day": "2024-03-01",
		"odd": "01/03/2024", "email": "  Jo@Example.COM ", "tags": ["vip", "wholesale"], "flag": true,
		"date": "a field named like a helper"}`)
	tests := []struct {
		field, expr string
		want        any
	}{
		{"d", "date(created_at)", "2024-03-01"}, // the date as written, not in UTC
		{"d", "date(day)", "2024-03-01"},
		{"d", "date(odd, '02/01/2006')", "2024-03-01"},
		{"dt", "datetime(created_at)", "2024-03-02T04:30:00Z"},
		{"dt", "datetime(plain)", "2024-03-01T08:15:00Z"},
		{"dt", "datetime(day)", "2024-03-01T00:00:00Z"},
		{"dt", "datetime('2024-03-01T10:00:00.5+01:00')", "2024-03-01T09:00:00.5Z"},
		{"s", "lower(trim(email))", "jo@example.com"},
		{"s", "upper(trim(email))", "JO@EXAMPLE.COM"},
		{"s", "trim('--a--', '-')", "a"},
		{"s", "join(tags, ', ')", "vip, wholesale"},
		{"s", "replace(email, ' ', '')", "Jo@Example.COM"},
		{"s", "'vip' in tags ? 'x' : 'y'", "x"},
		{"s", "flag", "true"},
		{"b", "flag", true},
		{"s", "date", "a field named like a helper"},
		{"s", "$env.date", "a field named like a helper"},
		{"text", "string(len(tags))", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			outs, err := one(t, tt.field, tt.expr).Apply(doc)
			require.NoError(t, err)
			require.Equal(t, records.Fields{tt.field: tt.want}, outs[0].Fields)
		})
	}
}

func TestEvaluationErrorsNameTargetAndField(t *testing.T) {
	m, err := mapping.Compile(mapping.Spec{Targets: []mapping.Target{
		{Object: "account", ExternalID: "customer", Fields: map[string]string{"name": "customer.name"}},
		{Object: "sample", Fields: map[string]string{
			"n":  "float(total_price)",
			"d":  "date(created_at)",
			"s":  "tags",
			"i":  "int(total_price)",
			"dt": "'x' + 1",
			"b":  "true",
		}},
	}}, schema(t))
	require.NoError(t, err)
	outs, err := m.Apply([]byte(`{"customer": {"name": "Jo"}, "total_price": "abc", "created_at": "yesterday", "tags": ["a"]}`))
	require.ErrorIs(t, err, mapping.ErrEvaluation)
	var ae *mapping.ApplyError
	require.ErrorAs(t, err, &ae)
	type where struct {
		target int
		field  string
	}
	var got []where
	for _, p := range ae.Problems {
		require.Equal(t, "evaluation", p.Code)
		require.NotEmpty(t, p.Message)
		require.NotContains(t, p.Message, "\n")
		got = append(got, where{p.Target, p.Field})
	}
	require.Equal(t, []where{{0, "external_id"}, {1, "d"}, {1, "dt"}, {1, "i"}, {1, "n"}, {1, "s"}}, got)
	require.Contains(t, err.Error(), "target 1 (sample) n: float(): \"abc\" is not a number")
	require.Contains(t, err.Error(), "target 1 (sample) d: date(): \"yesterday\"")

	// What did evaluate is still there, for a preview.
	require.Len(t, outs, 2)
	require.Equal(t, records.Fields{"name": "Jo"}, outs[0].Fields)
	require.Equal(t, records.Fields{"b": true}, outs[1].Fields)
}

func TestReadingAMemberOfAScalarIsAnError(t *testing.T) {
	_, err := one(t, "s", "customer.id").Apply([]byte(`{"customer": "x"}`))
	require.ErrorIs(t, err, mapping.ErrEvaluation)
	require.Contains(t, err.Error(), "cannot read .id of a string")
}

func TestHostileExpressionsAreBounded(t *testing.T) {
	tests := []struct{ name, expr string }{
		{"doubling strings", "reduce(1..64, #acc + #acc, 'xxxxxxxx')"},
		{"doubling with let", "let a = 'xxxxxxxxxxxxxxxx'; let b = a+a+a+a+a+a+a+a; let c = b+b+b+b+b+b+b+b; let d = c+c+c+c+c+c+c+c; let e = d+d+d+d+d+d+d+d; let f = e+e+e+e+e+e+e+e; let g = f+f+f+f+f+f+f+f; g+g+g+g+g+g+g+g"},
		{"a huge range", "string(len(1..100000000))"},
		{"nested loops", "string(count(1..1000, {count(1..1000, {count(1..1000, true) > 0}) > 0}))"},
		{"join of a big list", "join(map(1..50000, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'), 'yyyyyyyyyyyyyyyyyyyyyyyy')"},
		{"replace blowing up", "let a = replace('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'x', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'); let b = replace(a, 'x', a); b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := one(t, "text", tt.expr).Apply([]byte(`{}`))
			require.ErrorIs(t, err, mapping.ErrEvaluation)
			var ae *mapping.ApplyError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, "text", ae.Problems[0].Field)
		})
	}

	deep := strings.Repeat("1 + ", 1500) + "1"
	_, err := mapping.Compile(mapping.Spec{Targets: []mapping.Target{{Object: "sample", Fields: map[string]string{"n": deep}}}}, schema(t))
	require.ErrorIs(t, err, mapping.ErrInvalidMapping)
}

func TestFieldValuesAreJSONTypes(t *testing.T) {
	tests := []struct {
		field, expr string
		want        any
		err         string
	}{
		{"n", "[1, 2]", nil, "a list"},
		{"n", "{'a': 1}", nil, "an object"},
		{"s", "$env", nil, "an object"},
		{"n", "1 / 0", nil, "not a number"},
		{"s", "duration('90m')", "1h30m0s", ""},
		{"d", "date('2024-03-01T00:30:00+09:00')", "2024-03-01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			outs, err := one(t, tt.field, tt.expr).Apply([]byte(`{}`))
			if tt.err != "" {
				require.ErrorIs(t, err, mapping.ErrEvaluation)
				require.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, outs[0].Fields[tt.field])
		})
	}
}

func TestRefs(t *testing.T) {
	m, err := mapping.Compile(mapping.Spec{Targets: []mapping.Target{
		{Object: "contact", ExternalID: "string(id)", Fields: map[string]string{
			"first_name": "first", "last_name": "last",
			"account_id": "ref('account', 'acc-' + string(company_id))", // a later target: not this document's
		}},
		{Object: "account", ExternalID: "' acc-' + string(company_id) + ' '", Fields: map[string]string{"name": "company"}},
		{Object: "opportunity", ExternalID: "'opp-' + string(id)", Fields: map[string]string{
			"name":       "'Deal'",
			"account_id": "ref('account', 'acc-' + string(company_id))", // the earlier target 1
		}},
		{Object: "sample", Fields: map[string]string{"any_ref": "ref('contact', id)", "account": "ref('account', missing)"}},
	}}, schema(t))
	require.NoError(t, err)
	outs, err := m.Apply([]byte(`{"id": 820982911946154508, "first": "Jo", "last": "Bloggs", "company_id": 7, "company": "Acme"}`))
	require.NoError(t, err)
	require.Equal(t, "acc-7", outs[1].ExternalID, "external ids are trimmed")
	require.Equal(t, map[string]mapping.Ref{"account_id": {Object: "account", ExternalID: "acc-7", Target: -1}}, outs[0].Refs)
	require.Equal(t, map[string]mapping.Ref{"account_id": {Object: "account", ExternalID: "acc-7", Target: 1}}, outs[2].Refs)
	require.Equal(t, map[string]mapping.Ref{"any_ref": {Object: "contact", ExternalID: "820982911946154508", Target: 0}}, outs[3].Refs)
	require.NotContains(t, outs[2].Fields, "account_id")
	require.Empty(t, outs[3].Fields, "a ref of a missing external id leaves the field out")

	fields, err := outs[2].Resolve(func(r mapping.Ref) (string, error) {
		require.Equal(t, 1, r.Target)
		return "rec_01J00000000000000000000001", nil
	})
	require.NoError(t, err)
	require.Equal(t, records.Fields{"name": "Deal", "account_id": "rec_01J00000000000000000000001"}, fields)
	require.NotContains(t, outs[2].Fields, "account_id", "Resolve does not change the output")

	_, err = outs[0].Resolve(func(mapping.Ref) (string, error) { return "", records.ErrNotFound })
	require.ErrorIs(t, err, records.ErrNotFound)
	require.Contains(t, err.Error(), "target 0 (contact) account_id")
}

func TestSpecJSONRoundTrip(t *testing.T) {
	src := []byte(`{"targets": [
	  {"object": "account", "external_id": "'shopify-' + string(customer.id)",
	   "fields": {"name": "customer.first_name + ' ' + customer.last_name"}},
	  {"object": "opportunity", "external_id": "'shopify-' + string(id)",
	   "fields": {"name": "'Shopify order ' + name", "amount": "float(total_price)", "stage": "'Closed Won'",
	              "account_id": "ref('account', 'shopify-' + string(customer.id))"}},
	  {"object": "sample", "fields": {"s": "\"quoted\" + '<>&'"}}
	]}`)
	spec, err := mapping.ParseSpec(src)
	require.NoError(t, err)
	require.Len(t, spec.Targets, 3)
	require.Equal(t, "float(total_price)", spec.Targets[1].Fields["amount"])

	m, err := mapping.Compile(spec, schema(t))
	require.NoError(t, err)
	stored, err := json.Marshal(m)
	require.NoError(t, err)
	require.JSONEq(t, string(src), string(stored))
	again, err := mapping.ParseSpec(stored)
	require.NoError(t, err)
	require.Equal(t, spec, again)
	require.Equal(t, spec, m.Spec())

	// The mapping keeps its own copy.
	spec.Targets[1].Fields["amount"] = "0"
	require.Equal(t, "float(total_price)", m.Spec().Targets[1].Fields["amount"])
}

func TestParseSpecRefuses(t *testing.T) {
	for _, src := range []string{
		`{"targets": [{"object": "account", "feilds": {}}]}`,
		`{"targets": []} {}`,
		`{"targets": [{"object": 1}]}`,
		`[]`,
		``,
	} {
		_, err := mapping.ParseSpec([]byte(src))
		require.ErrorIs(t, err, mapping.ErrInvalidMapping, src)
	}
}

func TestInvalidDocuments(t *testing.T) {
	m := one(t, "s", "name")
	for _, doc := range []string{``, `[]`, `"x"`, `12`, `null`, `{"a": 1} {}`, `{"a":`} {
		_, err := m.Apply([]byte(doc))
		require.ErrorIs(t, err, mapping.ErrInvalidDocument, doc)
	}
}

func TestApplyValueLeavesTheDocumentAlone(t *testing.T) {
	doc, err := mapping.Decode([]byte(`{"id": 820982911946154508, "huge": 123456789012345678901234567890, "items": [{"p": 1.5}]}`))
	require.NoError(t, err)
	m, err := mapping.Compile(mapping.Spec{Targets: []mapping.Target{{Object: "sample", Fields: map[string]string{
		"s": "string(id)", "text": "string(huge)", "n": "items[0].p",
	}}}}, schema(t))
	require.NoError(t, err)
	before := fmt.Sprint(doc)
	outs, err := m.ApplyValue(doc)
	require.NoError(t, err)
	require.Equal(t, records.Fields{"s": "820982911946154508", "text": "123456789012345678901234567890", "n": 1.5}, outs[0].Fields)
	require.Equal(t, before, fmt.Sprint(doc))

	// A document decoded by encoding/json without UseNumber works, with
	// what float64 kept of its numbers.
	var plain any
	require.NoError(t, json.Unmarshal([]byte(`{"id": 42, "items": [{"p": 1.5}]}`), &plain))
	outs, err = m.ApplyValue(plain)
	require.NoError(t, err)
	require.Equal(t, records.Fields{"s": "42", "n": 1.5}, outs[0].Fields)
}

func TestApplyIsSafeForConcurrentUse(t *testing.T) {
	m := one(t, "s", "'order-' + string(id) + '-' + lower(customer.name ?? 'none')")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := g*1000 + i
				doc := fmt.Appendf(nil, `{"id": %d, "customer": {"name": "N%d"}}`, id, id)
				outs, err := m.Apply(doc)
				if err != nil || outs[0].Fields["s"] != fmt.Sprintf("order-%d-n%d", id, id) {
					t.Errorf("doc %d: %v %v", id, outs, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
