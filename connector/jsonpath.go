package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// splitPath splits a dot path ("meta.next_cursor") into its members; "" is
// the document itself. A member of digits indexes an array.
func splitPath(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	parts := strings.Split(path, ".")
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("the path %q has an empty member", path)
		}
	}
	return parts, nil
}

// lookup answers the value at path in doc, and false when a member on the way
// is missing or the value there is null.
func lookup(doc json.RawMessage, path []string) (json.RawMessage, bool, error) {
	v := doc
	for i, member := range path {
		switch firstByte(v) {
		case '{':
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(v, &obj); err != nil {
				return nil, false, err
			}
			next, ok := obj[member]
			if !ok {
				return nil, false, nil
			}
			v = next
		case '[':
			idx, err := strconv.Atoi(member)
			if err != nil || idx < 0 {
				return nil, false, fmt.Errorf("%q is an array, indexed by numbers", strings.Join(path[:i], "."))
			}
			var arr []json.RawMessage
			if err := json.Unmarshal(v, &arr); err != nil {
				return nil, false, err
			}
			if idx >= len(arr) {
				return nil, false, nil
			}
			v = arr[idx]
		case 'n':
			return nil, false, nil
		default:
			return nil, false, fmt.Errorf("%q is not an object", strings.Join(path[:i], "."))
		}
	}
	if firstByte(v) == 'n' || len(bytes.TrimSpace(v)) == 0 {
		return nil, false, nil
	}
	return v, true, nil
}

func firstByte(v json.RawMessage) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// scalar answers a JSON string's text or a number's literal digits, so that
// 820982911946154508 stays exactly that.
func scalar(v json.RawMessage) (string, error) {
	switch c := firstByte(v); {
	case c == '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case c == '-' || (c >= '0' && c <= '9'):
		return string(bytes.TrimSpace(v)), nil
	}
	return "", errors.New("not a string or a number")
}

// FieldValue answers the value at a dot path of a record as text: a string as
// it is, a number as its literal digits. ok is false when the path leads
// nowhere or to null. Other values (objects, arrays, booleans) are an error:
// they cannot be an incremental field or an id.
func FieldValue(doc json.RawMessage, path string) (value string, ok bool, err error) {
	parts, err := splitPath(path)
	if err != nil {
		return "", false, err
	}
	v, ok, err := lookup(doc, parts)
	if err != nil || !ok {
		return "", false, err
	}
	s, err := scalar(v)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", path, err)
	}
	return s, true, nil
}
