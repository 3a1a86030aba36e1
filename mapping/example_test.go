package mapping_test

import (
	"fmt"
	"sort"

	"github.com/smartlite/crmkit/mapping"
	"github.com/smartlite/crmkit/records"
)

// A trimmed Shopify orders/create payload becomes an account for the customer
// and a won opportunity for the order, linked by ref().
func Example() {
	schema, err := records.NewValidator(records.DefaultObjects())
	if err != nil {
		fmt.Println(err)
		return
	}
	spec, err := mapping.ParseSpec([]byte(`{"targets": [
	  {"object": "account", "external_id": "'shopify-' + string(customer.id)",
	   "fields": {"name": "customer.first_name + ' ' + customer.last_name"}},
	  {"object": "opportunity", "external_id": "'shopify-' + string(id)",
	   "fields": {"name": "'Shopify order ' + name", "amount": "float(total_price)",
	              "stage": "'Closed Won'", "close_date": "date(created_at)",
	              "account_id": "ref('account', 'shopify-' + string(customer.id))"}}
	]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := mapping.Compile(spec, schema)
	if err != nil {
		fmt.Println(err)
		return
	}

	order := []byte(`{
	  "id": 820982911946154508,
	  "name": "#9999",
	  "email": "jon@example.com",
	  "created_at": "2024-03-01T17:02:46-05:00",
	  "total_price": "199.65",
	  "currency": "USD",
	  "customer": {"id": 115310627314723954, "first_name": "John", "last_name": "Smith"}
	}`)
	outs, err := m.Apply(order)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range outs {
		fmt.Println(o.Object, o.ExternalID)
		names := make([]string, 0, len(o.Fields))
		for name := range o.Fields {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Printf("  %s: %#v\n", name, o.Fields[name])
		}
		for name, ref := range o.Refs {
			fmt.Printf("  %s: ref(%s, %s) written by target %d\n", name, ref.Object, ref.ExternalID, ref.Target)
		}
	}
	// Output:
	// account shopify-115310627314723954
	//   name: "John Smith"
	// opportunity shopify-820982911946154508
	//   amount: 199.65
	//   close_date: "2024-03-01"
	//   name: "Shopify order #9999"
	//   stage: "Closed Won"
	//   account_id: ref(account, shopify-115310627314723954) written by target 0
}

// A mapping that names an unknown field and does not compile is refused
// with every problem named.
func ExampleCompile_problems() {
	schema, err := records.NewValidator(records.DefaultObjects())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = mapping.Compile(mapping.Spec{Targets: []mapping.Target{{
		Object: "opportunity",
		Fields: map[string]string{"amount": "float(total_price", "colour": "'red'"},
	}}}, schema)
	if ce, ok := err.(*mapping.CompileError); ok {
		for _, p := range ce.Problems {
			fmt.Println(p.Path, p.Code)
		}
	}
	// Output:
	// /targets/0/fields/amount compile
	// /targets/0/fields/colour unknown_field
}

// Resolve fills the refs of an output when it is written: here the account
// of target 0 was written as rec_01… and its id stands in for the ref.
func ExampleOutput_Resolve() {
	out := mapping.Output{
		Object: "opportunity",
		Fields: records.Fields{"name": "Shopify order #9999"},
		Refs:   map[string]mapping.Ref{"account_id": {Object: "account", ExternalID: "shopify-1", Target: 0}},
	}
	written := []string{"rec_01J0000000000000000000000A"}
	fields, err := out.Resolve(func(r mapping.Ref) (string, error) {
		return written[r.Target], nil
	})
	fmt.Println(fields["account_id"], fields["name"], err)
	// Output:
	// rec_01J0000000000000000000000A Shopify order #9999 <nil>
}
