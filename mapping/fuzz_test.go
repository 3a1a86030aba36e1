package mapping_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/smartlite/crmkit/mapping"
)

// FuzzApply maps arbitrary bytes with a mapping that uses every helper:
// Apply never panics, fails only with its sentinels, and what it answers
// holds only the types encoding/json produces.
func FuzzApply(f *testing.F) {
	for _, s := range []string{
		`{"id": 820982911946154508, "name": "#1001", "total_price": "199.65", "created_at": "2024-03-01T17:02:46-05:00",
		  "customer": {"id": 115310627314723954, "first_name": "John", "last_name": "Smith", "email": " J@X.COM "},
		  "line_items": [{"price": "10.00", "quantity": 2}, {"price": 5, "quantity": null}], "tags": "a, b"}`,
		`{"id": 123456789012345678901234567890, "customer": null, "line_items": {}}`,
		`{"id": "x", "customer": "x", "line_items": [1, "2", null, [], {}], "total_price": 1e400}`,
		`{"created_at": "", "total_price": -0, "customer": {"id": true}}`,
		`[]`, `null`, `{`, ``, `{"\u0000state": 1}`,
	} {
		f.Add([]byte(s))
	}
	m, err := mapping.Compile(mapping.Spec{Targets: []mapping.Target{
		{Object: "account", ExternalID: "'shopify-' + string(customer.id)", Fields: map[string]string{
			"name":     "trim(customer.first_name + ' ' + customer.last_name)",
			"website":  "lower(customer.email)",
			"industry": "upper(join(map(line_items, string(.price)), ','))",
		}},
		{Object: "opportunity", ExternalID: "string(id)", Fields: map[string]string{
			"name":        "'Shopify order ' + name",
			"amount":      "float(total_price) + sum(map(line_items, float(.price) * int(.quantity ?? 1)))",
			"probability": "int(total_price)",
			"close_date":  "date(created_at)",
			"stage":       "len(line_items) > 1 ? 'Closed Won' : 'Prospecting'",
			"account_id":  "ref('account', 'shopify-' + string(customer.id))",
		}},
		{Object: "lead", Fields: map[string]string{
			"name":    "replace(string(id), '1', '22')",
			"company": "datetime(created_at)",
			"email":   "customer?.email ?? $env.email",
		}},
	}}, schema(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		outs, err := m.Apply(doc)
		if err != nil && !errors.Is(err, mapping.ErrInvalidDocument) && !errors.Is(err, mapping.ErrEvaluation) {
			t.Fatalf("Apply error %v is neither sentinel", err)
		}
		if errors.Is(err, mapping.ErrInvalidDocument) {
			if outs != nil {
				t.Fatalf("outputs for an invalid document: %v", outs)
			}
			return
		}
		if len(outs) != 3 {
			t.Fatalf("%d outputs for 3 targets", len(outs))
		}
		for i, o := range outs {
			if o.Target != i {
				t.Fatalf("output %d says target %d", i, o.Target)
			}
			for name, v := range o.Fields {
				switch v.(type) {
				case string, float64, bool:
				default:
					t.Fatalf("target %d field %s holds %T", i, name, v)
				}
			}
			if _, err := json.Marshal(o.Fields); err != nil {
				t.Fatalf("target %d fields do not encode: %v", i, err)
			}
			for name, r := range o.Refs {
				if r.Target >= i || (r.Target >= 0 && (outs[r.Target].Object != r.Object || outs[r.Target].ExternalID != r.ExternalID)) {
					t.Fatalf("target %d ref %s points at %d wrongly", i, name, r.Target)
				}
			}
		}
	})
}
