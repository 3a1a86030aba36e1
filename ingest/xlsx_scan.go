package ingest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// scanSheet reads a worksheet's XML and fails with a *LimitError when a row
// number passes lim.Rows, a cell's column passes lim.Columns, or one row
// holds more than lim.CellsPerRow cell elements; part names the worksheet.
//
// It looks only at the start tags of row and c elements (any namespace
// prefix) and their r attributes, byte by byte, without building tokens:
// it runs on every worksheet before excelize does, so it has to be cheap.
// Comments, CDATA sections, processing instructions and quoted attribute
// values are skipped, so that text there cannot pass for an element. A row
// or cell without r is numbered after the one before it, as excelize does.
func scanSheet(r io.Reader, lim Limits, part string) error {
	s := sheetScanner{br: bufio.NewReaderSize(r, 64<<10), lim: lim, part: part}
	return s.run()
}

type sheetScanner struct {
	br    *bufio.Reader
	lim   Limits
	part  string
	row   int // current row number
	col   int // current column number (1-based)
	cells int // cells of the current row
	name  []byte
	ref   []byte
}

func (s *sheetScanner) run() error {
	for {
		if err := s.skipTo('<'); err != nil {
			return eofOK(err)
		}
		c, err := s.br.ReadByte()
		if err != nil {
			return eofOK(err)
		}
		switch c {
		case '!':
			err = s.skipSpecial()
		case '?':
			err = s.skipUntil("?>")
		case '/':
			err = s.skipTo('>')
		default:
			if err = s.br.UnreadByte(); err == nil {
				err = s.element()
			}
		}
		if err != nil {
			return eofOK(err)
		}
	}
}

// eofOK turns the end of input into success: what was read is within the
// limits, and whether the XML is well formed is excelize's to judge.
func eofOK(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// element reads a start tag after its '<'.
func (s *sheetScanner) element() error {
	s.name = s.name[:0]
	for {
		c, err := s.br.ReadByte()
		if err != nil {
			return err
		}
		if c == '>' || c == '/' || isXMLSpace(c) {
			if err := s.br.UnreadByte(); err != nil {
				return err
			}
			break
		}
		if len(s.name) < 64 {
			s.name = append(s.name, c)
		}
	}
	local := s.name
	if i := bytes.LastIndexByte(local, ':'); i >= 0 {
		local = local[i+1:]
	}
	isRow, isCell := string(local) == "row", string(local) == "c"
	hasRef, err := s.attributes(isRow || isCell)
	if err != nil {
		return err
	}
	switch {
	case isRow:
		n := s.row + 1
		if hasRef {
			n = atoiCapped(s.ref)
		}
		s.row, s.col, s.cells = n, 0, 0
		if s.row > s.lim.Rows || s.row < 0 {
			return &LimitError{Limit: "rows", Max: int64(s.lim.Rows), At: s.part}
		}
	case isCell:
		n := s.col + 1
		if hasRef {
			n = refColumn(s.ref)
		}
		s.col = n
		s.cells++
		if s.col > s.lim.Columns || s.col < 0 {
			return &LimitError{Limit: "columns", Max: int64(s.lim.Columns), At: fmt.Sprintf("%s row %d", s.part, s.row)}
		}
		if s.cells > s.lim.CellsPerRow {
			return &LimitError{Limit: "cells per row", Max: int64(s.lim.CellsPerRow), At: fmt.Sprintf("%s row %d", s.part, s.row)}
		}
	}
	return nil
}

// attributes reads a tag's attributes up to its '>', keeping the value of
// r in s.ref when want is set.
func (s *sheetScanner) attributes(want bool) (hasRef bool, err error) {
	s.ref = s.ref[:0]
	var (
		attr  []byte // current attribute name, capped
		inAtt bool   // after the name's '=', before its value
		ended bool   // the name was followed by a space
	)
	for {
		c, err := s.br.ReadByte()
		if err != nil {
			return hasRef, err
		}
		switch {
		case c == '>':
			return hasRef, nil
		case c == '"' || c == '\'':
			isRef := want && inAtt && string(attr) == "r"
			if err := s.quoted(c, isRef); err != nil {
				return hasRef, err
			}
			hasRef = hasRef || isRef
			attr, inAtt, ended = attr[:0], false, false
		case c == '=':
			inAtt, ended = len(attr) > 0, false
		case isXMLSpace(c) || c == '/':
			ended = len(attr) > 0 && !inAtt
		default:
			if inAtt || ended {
				// A new name: the last one had no value, or its value no
				// quotes (malformed; excelize will say so).
				attr, inAtt, ended = attr[:0], false, false
			}
			if len(attr) < 8 {
				attr = append(attr, c)
			}
		}
	}
}

// quoted skips a quoted attribute value, keeping it in s.ref when keep is
// set.
func (s *sheetScanner) quoted(q byte, keep bool) error {
	for {
		b, err := s.br.ReadSlice(q)
		if keep && len(s.ref) < 32 {
			s.ref = append(s.ref, b[:min(len(b), 32)]...)
		}
		switch err {
		case nil:
			if keep && len(s.ref) > 0 && s.ref[len(s.ref)-1] == q {
				s.ref = s.ref[:len(s.ref)-1]
			}
			return nil
		case bufio.ErrBufferFull:
			continue
		default:
			return err
		}
	}
}

// skipSpecial skips what follows "<!": a comment, a CDATA section or a
// declaration.
func (s *sheetScanner) skipSpecial() error {
	b, _ := s.br.Peek(7)
	switch {
	case bytes.HasPrefix(b, []byte("--")):
		_, _ = s.br.Discard(2)
		return s.skipUntil("-->")
	case bytes.HasPrefix(b, []byte("[CDATA[")):
		_, _ = s.br.Discard(7)
		return s.skipUntil("]]>")
	}
	return s.skipTo('>')
}

// skipTo reads past the next c.
func (s *sheetScanner) skipTo(c byte) error {
	for {
		_, err := s.br.ReadSlice(c)
		if err != bufio.ErrBufferFull {
			return err
		}
	}
}

// skipUntil reads past the next occurrence of end (at most 3 bytes).
func (s *sheetScanner) skipUntil(end string) error {
	var last [3]byte
	for {
		c, err := s.br.ReadByte()
		if err != nil {
			return err
		}
		last[0], last[1], last[2] = last[1], last[2], c
		if string(last[3-len(end):]) == end {
			return nil
		}
	}
}

func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// atoiCapped parses a row number, answering a huge one for anything too
// long and -1 for anything not a number.
func atoiCapped(b []byte) int {
	if len(b) > 9 {
		return 1 << 40
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return -1
	}
	return n
}

// refColumn answers the 1-based column of a cell reference like "AB12",
// a huge one for a reference of too many letters, -1 for none.
func refColumn(ref []byte) int {
	n, i := 0, 0
	for ; i < len(ref); i++ {
		c := ref[i] | 0x20
		if c < 'a' || c > 'z' {
			break
		}
		if i >= 6 {
			return 1 << 40
		}
		n = n*26 + int(c-'a') + 1
	}
	if i == 0 {
		return -1
	}
	return n
}
