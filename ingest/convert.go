package ingest

import (
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartlite/crmkit/records"
)

// DateOrder says how a date written with slashes, like 02/01/2006, is read.
type DateOrder int

const (
	// DateOrderUnambiguous reads a slash date only when its order is clear:
	// one of its first two numbers is over 12 (31/12/2025 is day first,
	// 12/31/2025 month first), or both are the same. Others, like
	// 02/01/2006, fail with a message asking for 2006-01-02 or a DateOrder:
	// guessing would write a wrong date with no error.
	DateOrderUnambiguous DateOrder = iota
	// DayFirst reads 02/01/2006 as 2 January 2006.
	DayFirst
	// MonthFirst reads 02/01/2006 as 1 February 2006.
	MonthFirst
)

// ErrCell is matched by every *CellError.
var ErrCell = errors.New("cell does not convert")

// Converter turns the text of a cell into the value of a field of a given
// type. The zero value reads CSV cells; XLSXTable.Converter answers the one
// for a workbook's cells.
//
// What each type accepts (spaces around a value are ignored, and an empty
// cell has no value: Convert answers nil, and the field is left out):
//
//   - string, text, reference: the cell as it is.
//   - number: a decimal number, "1234.5", "-1.5e3", "+7", also with
//     thousands separators in groups of three, "1,234,567.50". A comma as
//     the decimal mark ("1234,5") is refused: "1,234" would be ambiguous.
//     NaN, infinities and hexadecimal forms are refused.
//   - integer: a number as above that is whole ("12.0" is 12), within ±2^53.
//   - boolean: true/false, yes/no, 1/0, in any case.
//   - date: 2006-01-02, 2006/01/02, 02.01.2006 (day first), slash dates as
//     DateOrder says, any of these with a time (which is dropped), RFC 3339
//     (the date as written), and with Serials an Excel serial number (its
//     fraction, a time of day, is dropped). Stored as "2006-01-02".
//   - datetime: the date forms above, with a time "15:04" or "15:04:05",
//     after a space or a T, or RFC 3339 with a zone; serial numbers with
//     Serials. A time without a zone is in Location. Stored as RFC 3339 in
//     UTC; a date alone is midnight.
//   - email: an address, or a "Name <address>" form, whose address is kept.
//   - url: an absolute http or https URL; one written without a scheme,
//     like www.example.com, gets https://.
//   - picklist: one of the field's Options, matched exactly or else ignoring
//     case and runs of spaces; the option as the schema spells it is stored.
//
// Excel serial numbers count days from 1900-01-01 as 1 (with Excel's
// non-existent 1900-02-29 as 60, which is refused), or from 1904-01-01 as 0
// with Date1904; the fraction is the time of day, rounded to the
// millisecond.
type Converter struct {
	// Serials reads numbers in date and datetime cells as Excel serial
	// numbers. xlsx cells hold dates as serials; CSV cells do not, and
	// there a number like 2025 is not a date.
	Serials bool
	// Date1904 counts serials from 1904 (the workbook's date1904 flag).
	Date1904 bool
	// DateOrder reads slash dates.
	DateOrder DateOrder
	// Location is the zone of times written without one; nil is UTC.
	Location *time.Location
}

// conversionError is a cell value that is not what its field needs.
type conversionError struct {
	value string
	want  string
}

func (e *conversionError) Error() string {
	return fmt.Sprintf("%q %s", shorten(e.value, 64), e.want)
}

// shorten cuts s to at most max bytes, at a character boundary.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Convert answers the value of field f held in the cell text s, nil when
// the cell is empty. An error's text reads after the value's quote, as in
// `"abc" is not a number`.
func (c Converter) Convert(f *records.Field, s string) (any, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return nil, nil
	}
	switch f.Type {
	case records.TypeNumber:
		if n, ok := parseNumber(v); ok {
			return n, nil
		}
		return nil, &conversionError{s, "is not a number"}
	case records.TypeInteger:
		n, ok := parseNumber(v)
		if !ok || n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return nil, &conversionError{s, "is not a whole number"}
		}
		return n, nil
	case records.TypeBoolean:
		switch strings.ToLower(v) {
		case "true", "yes", "1":
			return true, nil
		case "false", "no", "0":
			return false, nil
		}
		return nil, &conversionError{s, "is not true or false (nor yes/no, 1/0)"}
	case records.TypeDate:
		t, _, err := c.parseTime(v)
		if err != nil {
			return nil, &conversionError{s, err.Error()}
		}
		return t.Format(records.DateLayout), nil
	case records.TypeDateTime:
		t, zoned, err := c.parseTime(v)
		if err != nil {
			return nil, &conversionError{s, err.Error()}
		}
		if !zoned {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), c.loc())
		}
		return t.UTC().Format(records.DateTimeLayout), nil
	case records.TypeEmail:
		a, err := mail.ParseAddress(v)
		if err != nil {
			return nil, &conversionError{s, "is not an email address"}
		}
		return a.Address, nil
	case records.TypeURL:
		if u, ok := parseURL(v); ok {
			return u, nil
		}
		return nil, &conversionError{s, "is not an http or https URL"}
	case records.TypePicklist:
		if o, ok := pickOption(f.Options, v); ok {
			return o, nil
		}
		return nil, &conversionError{s, "is not one of: " + shorten(strings.Join(f.Options, ", "), 512)}
	case records.TypeReference:
		return v, nil
	}
	return s, nil
}

func (c Converter) loc() *time.Location {
	if c.Location == nil {
		return time.UTC
	}
	return c.Location
}

// parseNumber reads a decimal number with optional thousands separators.
func parseNumber(s string) (float64, bool) {
	if strings.IndexByte(s, ',') >= 0 {
		var ok bool
		if s, ok = ungroup(s); !ok {
			return 0, false
		}
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			exp++
		}
		if exp == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// ungroup removes thousands separators, which must group the integer part
// in threes: "1,234,567.5" but not "1,23" or "1234,5".
func ungroup(s string) (string, bool) {
	sign := ""
	if s != "" && (s[0] == '+' || s[0] == '-') {
		sign, s = s[:1], s[1:]
	}
	intPart, rest := s, ""
	if i := strings.IndexAny(s, ".eE"); i >= 0 {
		intPart, rest = s[:i], s[i:]
	}
	if strings.IndexByte(rest, ',') >= 0 {
		return "", false
	}
	groups := strings.Split(intPart, ",")
	if len(groups[0]) < 1 || len(groups[0]) > 3 {
		return "", false
	}
	for _, g := range groups[1:] {
		if len(g) != 3 {
			return "", false
		}
	}
	return sign + strings.Join(groups, "") + rest, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Serial number bounds: 9999-12-31 is the last day Excel shows.
const (
	maxSerial1900 = 2958465
	maxSerial1904 = maxSerial1900 - 1462
)

// serialTime turns an Excel serial number into a wall-clock time.
func (c Converter) serialTime(v float64) (time.Time, bool) {
	if math.IsNaN(v) || v < 0 {
		return time.Time{}, false
	}
	days := math.Floor(v)
	var base time.Time
	switch {
	case c.Date1904:
		if days > maxSerial1904 {
			return time.Time{}, false
		}
		base = time.Date(1904, 1, 1, 0, 0, 0, 0, time.UTC)
	case days < 1 || days == 60 || days > maxSerial1900:
		// 0 is Excel's "1900-01-00", 60 its 1900-02-29, a day that never was.
		return time.Time{}, false
	case days < 60:
		base = time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC)
	default:
		base = time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)
	}
	ms := math.Round((v - days) * 86400000)
	return base.AddDate(0, 0, int(days)).Add(time.Duration(ms) * time.Millisecond), true
}

// Text layouts of dates and times, tried in order after the slash and dot
// forms. Times without a zone are wall clock, placed in Location later.
var (
	dateLayouts = []string{"2006-01-02", "2006/01/02"}
	timeLayouts = []string{"15:04:05.999999999", "15:04"}
)

// parseTime reads a date or datetime cell; zoned says the text carried its
// zone (RFC 3339), otherwise the result is wall clock in UTC.
func (c Converter) parseTime(s string) (t time.Time, zoned bool, err error) {
	if c.Serials {
		if n, ok := parseNumber(s); ok && strings.IndexByte(s, ',') < 0 {
			if t, ok := c.serialTime(n); ok {
				return t, false, nil
			}
			return time.Time{}, false, errors.New("is not a date serial number Excel can show")
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true, nil
	}
	datePart, timePart, hasTime := strings.Cut(s, " ")
	if !hasTime {
		datePart, timePart, hasTime = strings.Cut(s, "T")
	}
	timePart = strings.TrimSpace(timePart)
	d, err := c.parseDate(datePart)
	if err != nil {
		return time.Time{}, false, err
	}
	if !hasTime {
		return d, false, nil
	}
	for _, l := range timeLayouts {
		if tt, err := time.Parse(l, timePart); err == nil {
			return d.Add(tt.Sub(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))), false, nil
		}
	}
	return time.Time{}, false, errors.New("is not a date and time like 2006-01-02 15:04:05")
}

var errNotDate = errors.New("is not a date like 2006-01-02")

// parseDate reads the date forms: ISO, slash and dot.
func (c Converter) parseDate(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	sep := byte('/')
	if strings.IndexByte(s, '.') >= 0 {
		sep = '.'
	}
	parts := strings.Split(s, string(sep))
	if len(parts) != 3 || len(parts[2]) != 4 {
		return time.Time{}, errNotDate
	}
	var n [3]int
	for i, p := range parts {
		if p == "" || len(p) > 4 || (i < 2 && len(p) > 2) {
			return time.Time{}, errNotDate
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return time.Time{}, errNotDate
		}
		n[i] = v
	}
	day, month := n[0], n[1] // day first: 02.01.2006, or a DayFirst slash date
	if sep == '/' {
		switch {
		case c.DateOrder == MonthFirst:
			day, month = n[1], n[0]
		case c.DateOrder == DayFirst:
		case n[0] > 12 && n[1] <= 12, n[0] == n[1]:
		case n[1] > 12 && n[0] <= 12:
			day, month = n[1], n[0]
		default:
			return time.Time{}, fmt.Errorf("is an ambiguous date: write %04d-%02d-%02d or %04d-%02d-%02d, or choose day-first or month-first",
				n[2], n[1], n[0], n[2], n[0], n[1])
		}
	}
	t := time.Date(n[2], time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if month < 1 || month > 12 || t.Day() != day || t.Year() < 1 {
		return time.Time{}, errNotDate
	}
	return t, nil
}

// parseURL accepts an absolute http(s) URL, adding https:// when the text
// has no scheme.
func parseURL(s string) (string, bool) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		strings.ContainsAny(s, " \t\r\n") {
		return "", false
	}
	return s, true
}

// pickOption finds v among options, exactly or ignoring case and spaces.
func pickOption(options []string, v string) (string, bool) {
	for _, o := range options {
		if o == v {
			return o, true
		}
	}
	key := foldSpaces(v)
	for _, o := range options {
		if foldSpaces(o) == key {
			return o, true
		}
	}
	return "", false
}

// foldSpaces lowers s and collapses its runs of spaces into one.
func foldSpaces(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// CellError is a cell that does not convert to its column's field.
type CellError struct {
	Column string // the column's header
	Ref    string // the cell, "C7"
	Field  string // the field the column maps to
	Err    error
}

func (e *CellError) Error() string {
	return fmt.Sprintf("column %q (%s): %v", e.Column, e.Ref, e.Err)
}

// Is makes errors.Is(err, ErrCell) hold.
func (e *CellError) Is(target error) bool { return target == ErrCell }

func (e *CellError) Unwrap() error { return e.Err }

// CellErrors are the failing cells of one row, in column order.
type CellErrors []*CellError

func (es CellErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap answers the cells' errors, for errors.Is and errors.As.
func (es CellErrors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}
