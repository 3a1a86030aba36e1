package connector

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLinkNext(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		want   string
		ok     bool
	}{
		{"github", []string{`<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last"`},
			"https://api.github.com/repositories/1/issues?page=2", true},
		{"next not first", []string{`</items?page=1>; rel="prev", </items?page=3>; rel="next"`}, "/items?page=3", true},
		{"token rel", []string{`</p2>; rel=next`}, "/p2", true},
		{"several rel values", []string{`</p2>; rel="next last"`}, "/p2", true},
		{"case", []string{`</p2>; REL="Next"`}, "/p2", true},
		{"spaces", []string{`  < /p2 > ;  rel = "next"  `}, "/p2", true},
		{"comma in the URI", []string{`</items?ids=1,2,3&page=2>; rel="next"`}, "/items?ids=1,2,3&page=2", true},
		{"comma and semicolon in a quoted param", []string{`</a>; title="a, b; rel=next"; rel="prev", </b>; rel="next"`}, "/b", true},
		{"escaped quote", []string{`</a>; title="say \"hi\""; rel="next"`}, "/a", true},
		{"second field", []string{`</a>; rel="prev"`, `</b>; rel="next"`}, "/b", true},
		{"first rel counts", []string{`</a>; rel="prev"; rel="next", </b>; rel="next"`}, "/b", true},
		{"rel* is not rel", []string{`</a>; rel*=UTF-8''next`}, "", false},
		{"valueless param", []string{`</a>; crossorigin; rel=next`}, "/a", true},
		{"malformed value skipped", []string{`garbage, </b>; rel="next"`}, "/b", true},
		{"unterminated URI", []string{`</a; rel="next"`}, "", false},
		{"unterminated quote", []string{`</a>; rel="next`}, "", false},
		{"no next", []string{`</a>; rel="last"`}, "", false},
		{"nextfoo is not next", []string{`</a>; rel="nextfoo"`}, "", false},
		{"empty", nil, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := linkNext(tc.fields)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func FuzzLinkNext(f *testing.F) {
	for _, s := range []string{
		`<https://api.example/items?page=2>; rel="next", <https://api.example/items?page=9>; rel="last"`,
		`</a>; title="a, b; rel=next"; rel="prev", </b>; rel="next"`,
		`</a>; title="say \"hi\""; rel=next`,
		`<`, `<>;`, `;;,,`, `"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, field string) {
		got, ok := linkNext([]string{field})
		if !ok {
			if got != "" {
				t.Fatalf("no next link but %q", got)
			}
			return
		}
		// The target is text of the field that stood between angle brackets.
		if strings.Contains(got, ">") || !strings.Contains(field, got) {
			t.Fatalf("target %q is not a bracketed URI of %q", got, field)
		}
	})
}
