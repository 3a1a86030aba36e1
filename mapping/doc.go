// Package mapping turns one external JSON document (a Shopify order, one
// record of a connector's page) into records of one or more objects. Inbound
// webhook sources and pull connectors share it.
//
// # Mappings
//
// A mapping lists targets, each an object, an external id and fields, every
// value an expression over the document:
//
//	{"targets": [
//	  {"object": "account", "external_id": "'shopify-' + string(customer.id)",
//	   "fields": {"name": "customer.first_name + ' ' + customer.last_name"}},
//	  {"object": "opportunity", "external_id": "'shopify-' + string(id)",
//	   "fields": {"name": "'Shopify order ' + name", "amount": "float(total_price)",
//	              "stage": "'Closed Won'",
//	              "account_id": "ref('account', 'shopify-' + string(customer.id))"}}
//	]}
//
// [ParseSpec] reads that form (refusing unknown keys), and [Compile] checks
// it against the schema and compiles every expression once, when the mapping
// is saved. A mapping with an expression that does not compile, an unknown
// object or field, a read-only field, or a ref() of the wrong object is
// refused with a [*CompileError] whose problems each name the target (index
// and object), the field, and a JSON Pointer into the mapping, so an API can
// answer 422 naming them. [Mapping.Apply] then maps documents, one
// [Output] per target, in target order: the object, the external id, and
// the fields.
//
// # The expression language
//
// Expressions are expr (https://expr-lang.org): literals ('text', 12, 1.5,
// true, nil, [lists], {maps}), arithmetic, comparison, and/or/not, the
// ternary a ? b : c, ?? (the left side unless it is nil), string operators
// (contains, startsWith, endsWith, matches), let x = …; …, and predicates
// over lists such as map(line_items, .price), filter, any, all, count, sum.
// There is no I/O and no way to reach Go values other than the document.
//
// The document's top-level members are the variables: total_price,
// customer.first_name, line_items[0].sku. $env is the whole document, for a
// member whose name is not an identifier ($env["first-name"]).
//
// Helpers beyond expr's own, all of which answer nil for nil:
//
//   - string(x): the text of a string, number, boolean or time. A JSON
//     integer gives its digits exactly as sent, however large.
//   - float(x), int(x): a number, from a number or from text ("199.65");
//     int truncates toward zero.
//   - date(s), date(s, layout): the calendar date of a date or date and
//     time, as written (no change of time zone), as 2006-01-02.
//   - datetime(s), datetime(s, layout): a date and time as RFC 3339 in UTC;
//     text without an offset is taken as UTC. Without a layout both accept
//     RFC 3339, "2006-01-02 15:04:05" with or without an offset, and
//     2006-01-02; the layout is Go's (time.Parse). An empty string is nil.
//   - lower(s), upper(s), trim(s), trim(s, characters).
//   - ref(object, external_id): the record of object with that external
//     id; see References.
//
// expr's other builtins work as documented, except repeat, concat, flatten,
// toJSON and fromJSON, which a mapping cannot use; join and replace refuse
// to build a string over 1 MiB.
//
// # Numbers
//
// Documents are decoded with json.Decoder.UseNumber, so no number is ever
// rounded through a float64 on the way in: a whole number becomes an int
// (exact up to ±9223372036854775807), one too large for that stays a
// json.Number holding the digits as sent, and any other number becomes a
// float64. A Shopify id such as 820982911946154508, which a float64 cannot
// hold, comes out of string(id) as "820982911946154508".
//
// Values leave as the types encoding/json produces (string, float64,
// bool), converted at the end by the type of the field they fill: a text
// field (string, text, email, url, picklist) takes a number as its digits
// and a boolean as "true"/"false"; number and integer fields take numbers as
// float64; a date field takes a time as 2006-01-02 and other fields take it
// as RFC 3339. A list or an object is an error. External ids are text; a
// number is written as its digits.
//
// # Null and missing
//
// A field whose expression reads a null or missing path and so answers
// nil, or fails (customer.first_name + ' ' + customer.last_name when the
// order has no customer), is left out of the output: not an error and not
// a null, so an upsert keeps what the record holds. An expression that
// fails without having read one is an error. Reading a member of a
// value that is not an object (customer.id when customer is "x") is an
// error, not a missing path. A missing external id leaves Output.ExternalID
// empty.
//
// # References
//
// ref('account', 'shopify-' + string(customer.id)) stands for the id of a
// record that may not exist until the document is written: one an earlier
// target of the same document writes, or an existing one. It is resolved at
// write time, not by Apply: a field whose value is a ref() is in
// Output.Refs, not Output.Fields, with Ref.Target the index of the earlier
// output of the same object and external id (-1 when there is none).
// [Output.Resolve] builds the fields to write given a function that answers
// a ref's record id: the id written for output Ref.Target, or the id found
// by the external id. ref() may only fill reference fields, and only with
// the object the field refers to; its object must be a quoted name.
//
// # Limits
//
// Expressions are sandboxed and bounded: at most 4096 characters and 1000
// syntax nodes; one evaluation may allocate at most 100,000 list, map and
// range elements (expr's memory budget, which also bounds predicate
// iterations); + builds strings of at most 1 MiB and 8 MiB in all per
// evaluation. A hostile expression fails with an error naming its target
// and field.
package mapping
