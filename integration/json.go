package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// Shared header values; net/http does not modify them, and sharing them
// saves an allocation on every response.
var (
	contentTypeJSON = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

// decode reads one JSON value from the body into v, within the body limit.
// Unknown members are refused rather than ignored, so a misspelt "feilds"
// is an error the caller sees instead of an empty write. The Content-Type is
// not checked: the body has to be JSON whatever it says, and curl's -d
// labels JSON as a form.
//
// A NUL character (\u0000) anywhere in the body is refused: no database
// stores it in text, and it has no business in CRM data.
func (s *Service) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errBadRequest("invalid_json", "the body must hold exactly one JSON value")
	}
	if hasEscapedNUL(body) {
		return errBadRequest("invalid_json", "the body holds a NUL character (\\u0000), which no field may contain")
	}
	return nil
}

// hasEscapedNUL reports whether a JSON text holds \u0000 as an escape (not
// as the text of an escaped backslash followed by u0000).
func hasEscapedNUL(b []byte) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`u0000`))
		if j < 0 {
			return false
		}
		k := i + j
		slashes := 0
		for k-1-slashes >= 0 && b[k-1-slashes] == '\\' {
			slashes++
		}
		if slashes%2 == 1 {
			return true
		}
		i = k + 5
	}
}

// jsonError turns a decoding failure into the request error it answers as,
// keeping the decoder's description (it names the position or the field,
// never more of the body).
func jsonError(err error) error {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return err
	case errors.Is(err, io.EOF):
		return errBadRequest("invalid_json", "the request body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest("invalid_json", "the body is not valid JSON: "+err.Error())
	case errors.As(err, &typeErr):
		where := typeErr.Field
		if where == "" {
			where = "the body"
		}
		return errBadRequest("invalid_json", "wrong JSON type for "+where+": expected "+jsonKind(typeErr.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return errBadRequest("invalid_json", strings.TrimPrefix(err.Error(), "json: "))
	}
	return errBadRequest("invalid_json", "the body is not valid JSON: "+err.Error())
}

// jsonKind names a Go type as the JSON it decodes from, so that errors speak
// of objects and arrays, not of the server's own type names.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another JSON value"
}

// writeJSON answers with v as JSON. Marshalling first means a value that
// cannot be encoded becomes a clean 500, not half a response.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	b = append(b, '\n')
	_, _ = w.Write(b)
	return nil
}
