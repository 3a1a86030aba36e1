package connector

import (
	"strings"
)

// linkNext answers the target of the first link with relation type "next" in
// the Link header fields given (RFC 8288), as written: a URI reference the
// caller resolves against the request's URL. Malformed link-values are
// skipped.
func linkNext(fields []string) (string, bool) {
	for _, f := range fields {
		for _, l := range parseLinks(f) {
			for _, rel := range strings.Fields(l.rel) {
				if strings.EqualFold(rel, "next") {
					return l.target, true
				}
			}
		}
	}
	return "", false
}

type link struct {
	target string
	rel    string // the first rel parameter; later ones are ignored (RFC 8288, 3.3)
}

// parseLinks parses one Link field value:
//
//	Link       = #link-value
//	link-value = "<" URI-Reference ">" *( OWS ";" OWS link-param )
//	link-param = token BWS [ "=" BWS ( token / quoted-string ) ]
func parseLinks(s string) []link {
	var links []link
	p := linkParser{s: s}
	for {
		p.skip(" \t,")
		if p.done() {
			return links
		}
		l, ok := p.linkValue()
		if ok {
			links = append(links, l)
		} else {
			p.skipValue()
		}
	}
}

type linkParser struct {
	s string
	i int
}

func (p *linkParser) done() bool { return p.i >= len(p.s) }

func (p *linkParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *linkParser) skip(set string) {
	for !p.done() && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

// skipValue moves past the rest of a malformed link-value: to the next comma
// outside a URI reference and a quoted string.
func (p *linkParser) skipValue() {
	inURI, inQuote := false, false
	for ; !p.done(); p.i++ {
		c := p.s[p.i]
		switch {
		case inQuote && c == '\\':
			p.i++
		case inQuote:
			inQuote = c != '"'
		case inURI:
			inURI = c != '>'
		case c == '"':
			inQuote = true
		case c == '<':
			inURI = true
		case c == ',':
			return
		}
	}
}

func (p *linkParser) linkValue() (link, bool) {
	if p.peek() != '<' {
		return link{}, false
	}
	end := strings.IndexByte(p.s[p.i+1:], '>')
	if end < 0 {
		p.i = len(p.s)
		return link{}, false
	}
	l := link{target: strings.TrimSpace(p.s[p.i+1 : p.i+1+end])}
	p.i += end + 2
	seenRel := false
	for {
		p.skip(" \t")
		switch p.peek() {
		case 0, ',':
			return l, true
		case ';':
			p.i++
		default:
			return link{}, false
		}
		p.skip(" \t")
		name := p.token()
		if name == "" {
			return link{}, false
		}
		p.skip(" \t")
		var value string
		if p.peek() == '=' {
			p.i++
			p.skip(" \t")
			var ok bool
			if value, ok = p.paramValue(); !ok {
				return link{}, false
			}
		}
		if strings.EqualFold(name, "rel") && !seenRel {
			l.rel, seenRel = value, true
		}
	}
}

// token reads an RFC 9110 token.
func (p *linkParser) token() string {
	start := p.i
	for !p.done() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *linkParser) paramValue() (string, bool) {
	if p.peek() != '"' {
		v := p.token()
		return v, v != ""
	}
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return b.String(), true
		case '\\':
			if p.done() {
				return "", false
			}
			c = p.s[p.i]
			p.i++
		}
		b.WriteByte(c)
	}
	return "", false
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
