package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/smartlite/crmkit/records"
)

// Objects is what Compile needs to know of the schema: the object of a
// name, and ok=false when there is none. *records.Pipeline and
// *records.Validator implement it.
type Objects interface {
	Object(name string) (*records.Object, bool)
}

var (
	_ Objects = (*records.Pipeline)(nil)
	_ Objects = (*records.Validator)(nil)
)

// Mapping is a compiled Spec. It is immutable and safe for concurrent use.
type Mapping struct {
	spec    Spec
	targets []target
}

type target struct {
	object string
	extID  *vm.Program // nil when the target has no external id
	fields []field     // sorted by name
}

type field struct {
	name string
	typ  records.FieldType
	prog *vm.Program
}

// disabled are expr's builtins a mapping cannot use: those whose output can
// grow faster than their input (repeat, concat, flatten, toJSON), and
// fromJSON, which reads numbers as float64 and so loses big ids.
var disabled = []string{"repeat", "concat", "flatten", "toJSON", "fromJSON"}

// options are the expr options every expression compiles with.
var options = func() []expr.Option {
	opts := []expr.Option{
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
		expr.MaxNodes(maxNodes),
		expr.Function(fnGet, get),
		expr.Function(fnAdd, add),
		expr.Function("string", fnString),
		expr.Function("float", fnFloat),
		expr.Function("int", fnInt),
		expr.Function("lower", stringFunc("lower", strings.ToLower)),
		expr.Function("upper", stringFunc("upper", strings.ToUpper)),
		expr.Function("trim", fnTrim),
		expr.Function("join", fnJoin),
		expr.Function("replace", fnReplace),
		expr.Function("date", fnDate),
		expr.Function("datetime", fnDateTime),
		expr.Function("ref", fnRef),
		expr.Patch(rewrite{}),
	}
	for _, name := range disabled {
		opts = append(opts, expr.DisableBuiltin(name))
	}
	return opts
}()

// Compile checks spec against the schema and compiles every expression
// once. It fails with a *CompileError (wrapping ErrInvalidMapping) that
// lists every problem, each naming its target and field: an expression that
// does not compile, an unknown object or field, a read-only field, an
// external id for an object that has none, a ref() naming an unknown object
// or another object than the field refers to.
func Compile(spec Spec, objects Objects) (*Mapping, error) {
	if objects == nil {
		return nil, errors.New("mapping: Compile needs the objects")
	}
	m := &Mapping{spec: cloneSpec(spec), targets: make([]target, len(spec.Targets))}
	var problems []Problem
	if len(spec.Targets) == 0 {
		problems = append(problems, Problem{Target: -1, Path: "/targets", Code: "no_targets", Message: "a mapping needs at least one target"})
	}
	for i, t := range spec.Targets {
		base := "/targets/" + strconv.Itoa(i)
		fail := func(fieldName, path, code, msg string) {
			problems = append(problems, Problem{Target: i, Object: t.Object, Field: fieldName, Path: path, Code: code, Message: msg})
		}
		obj, ok := objects.Object(t.Object)
		if !ok {
			fail("", base+"/object", "unknown_object", fmt.Sprintf("unknown object %q", t.Object))
			continue
		}
		tg := target{object: t.Object}
		if t.ExternalID != "" {
			path := base + "/external_id"
			if obj.ExternalID == "" {
				fail("external_id", path, "no_external_id", fmt.Sprintf("%s has no external id field", t.Object))
			} else if prog, p := compileExpr(t.ExternalID, nil, objects); p != nil {
				fail("external_id", path, p.code, p.msg)
			} else {
				tg.extID = prog
			}
		}
		names := make([]string, 0, len(t.Fields))
		for name := range t.Fields {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			path := base + "/fields/" + pointerEscape(name)
			f := fieldOf(obj, name)
			switch {
			case f == nil:
				fail(name, path, "unknown_field", fmt.Sprintf("%s has no field %q", t.Object, name))
				continue
			case f.ReadOnly:
				fail(name, path, "read_only", "is read-only: only workflow rules set it")
				continue
			case t.ExternalID != "" && name == obj.ExternalID:
				fail(name, path, "external_id_field", "is set by the target's external_id; map it there only")
				continue
			}
			prog, p := compileExpr(t.Fields[name], f, objects)
			if p != nil {
				fail(name, path, p.code, p.msg)
				continue
			}
			tg.fields = append(tg.fields, field{name: name, typ: f.Type, prog: prog})
		}
		m.targets[i] = tg
	}
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	return m, nil
}

// Spec returns the spec m was compiled from.
func (m *Mapping) Spec() Spec { return cloneSpec(m.spec) }

// MarshalJSON writes m's Spec, the form a mapping is stored in; Compile
// (after ParseSpec) turns it back into a Mapping.
func (m *Mapping) MarshalJSON() ([]byte, error) { return json.Marshal(m.spec) }

func cloneSpec(s Spec) Spec {
	out := Spec{Targets: make([]Target, len(s.Targets))}
	for i, t := range s.Targets {
		t.Fields = cloneMap(t.Fields)
		out.Targets[i] = t
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func fieldOf(obj *records.Object, name string) *records.Field {
	for i := range obj.Fields {
		if obj.Fields[i].Name == name {
			return &obj.Fields[i]
		}
	}
	return nil
}

// pointerEscape escapes a JSON Pointer reference token (RFC 6901).
func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

type problem struct{ code, msg string }

// compileExpr compiles one expression. f is the field it fills, nil for an
// external id.
func compileExpr(src string, f *records.Field, objects Objects) (*vm.Program, *problem) {
	switch {
	case strings.TrimSpace(src) == "":
		return nil, &problem{"empty", "is an empty expression"}
	case len(src) > maxExpression:
		return nil, &problem{"too_long", fmt.Sprintf("is longer than %d characters", maxExpression)}
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, &problem{"compile", exprMessage(err)}
	}
	if p := checkCalls(tree.Node); p != nil {
		return nil, p
	}
	if p := checkRefs(tree.Node, f, objects); p != nil {
		return nil, p
	}
	prog, err := expr.Compile(src, options...)
	if err != nil {
		return nil, &problem{"compile", exprMessage(err)}
	}
	return prog, nil
}

// exprMessage shortens expr's error (which quotes the source with a caret
// under the column) to one line.
func exprMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		return fmt.Sprintf("%s (column %d)", fe.Message, fe.Column+1)
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// functions are the names an expression may call: the helpers and expr's
// builtins that are not disabled.
var functions = func() map[string]bool {
	fs := map[string]bool{}
	for _, f := range builtin.Builtins {
		fs[f.Name] = true
	}
	for _, name := range disabled {
		delete(fs, name)
	}
	for _, name := range []string{"string", "float", "int", "lower", "upper", "trim", "join", "replace", "date", "datetime", "ref"} {
		fs[name] = true
	}
	return fs
}()

// checkCalls refuses a call of a name that is no function. expr, which
// must allow variables it does not know (they are the document's), would
// otherwise take it for a variable and fail only when it runs.
func checkCalls(root ast.Node) *problem {
	var p *problem
	ast.Find(root, func(n ast.Node) bool {
		name := ""
		switch c := n.(type) {
		case *ast.CallNode:
			if id, ok := c.Callee.(*ast.IdentifierNode); ok {
				name = id.Value
			}
		case *ast.BuiltinNode:
			name = c.Name
		}
		if name != "" && !functions[name] {
			p = &problem{"unknown_function", fmt.Sprintf("%s() is not a function a mapping can call", name)}
		}
		return p != nil
	})
	return p
}

// checkRefs checks the ref() calls of an expression: the object must be a
// string literal naming a known object, the one a reference field refers to,
// and a ref() is a record id, so it fills reference fields only.
func checkRefs(root ast.Node, f *records.Field, objects Objects) *problem {
	var p *problem
	ast.Find(root, func(n ast.Node) bool {
		call, ok := n.(*ast.CallNode)
		if !ok || p != nil {
			return false
		}
		if id, ok := call.Callee.(*ast.IdentifierNode); !ok || id.Value != "ref" {
			return false
		}
		if f == nil {
			p = &problem{"ref", "an external id cannot be a ref()"}
			return true
		}
		if len(call.Arguments) != 2 {
			p = &problem{"ref", "ref() takes an object name and an external id"}
			return true
		}
		name, ok := call.Arguments[0].(*ast.StringNode)
		switch {
		case !ok:
			p = &problem{"ref", "ref()'s object must be a quoted object name"}
		case f.Type != records.TypeReference:
			p = &problem{"ref", fmt.Sprintf("ref() gives a record id, and %s is a %s field, not a reference", f.Name, f.Type)}
		default:
			if _, known := objects.Object(name.Value); !known {
				p = &problem{"ref", fmt.Sprintf("ref() names unknown object %q", name.Value)}
			} else if f.Reference != "" && f.Reference != name.Value {
				p = &problem{"ref", fmt.Sprintf("ref() names %s, and %s refers to %s", name.Value, f.Name, f.Reference)}
			}
		}
		return p != nil
	})
	return p
}

// rewrite is the patch every expression is compiled with. It turns every
// path read (a variable, a member, an index) into a call of get, which
// answers nil for a null or missing step instead of failing and notes that
// it did, and every + into a call of add, which bounds the strings it
// builds. Both get the evaluation's state as their first argument.
//
// ast.Walk visits children before their parent, so by the time a member is
// visited its base is already rewritten: a chain a.b[0].c becomes one call
// get(state, a, "b", 0, "c").
type rewrite struct{}

func stateNode() ast.Node { return &ast.IdentifierNode{Value: stateKey} }

func isCall(n ast.Node, name string) (*ast.CallNode, bool) {
	c, ok := n.(*ast.CallNode)
	if !ok {
		return nil, false
	}
	id, ok := c.Callee.(*ast.IdentifierNode)
	return c, ok && id.Value == name
}

func (rewrite) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "$env" || n.Value == stateKey || strings.HasPrefix(n.Value, "\x00") {
			return
		}
		ast.Patch(node, &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: fnGet},
			Arguments: []ast.Node{stateNode(), &ast.IdentifierNode{Value: n.Value}},
		})
	case *ast.MemberNode:
		if n.Method {
			return
		}
		if c, ok := isCall(n.Node, fnGet); ok {
			c.Arguments = append(c.Arguments, n.Property)
			ast.Patch(node, c)
			return
		}
		ast.Patch(node, &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: fnGet},
			Arguments: []ast.Node{stateNode(), n.Node, n.Property},
		})
	case *ast.CallNode:
		// A function's name was taken for a variable on the way up; it is
		// the callee here.
		if c, ok := isCall(n.Callee, fnGet); ok && len(c.Arguments) == 2 {
			if id, ok := c.Arguments[1].(*ast.IdentifierNode); ok {
				n.Callee = id
			}
		}
	case *ast.BinaryNode:
		if n.Operator == "+" {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: fnAdd},
				Arguments: []ast.Node{stateNode(), n.Left, n.Right},
			})
		}
	}
}
