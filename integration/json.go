package integration

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
func (s *Service) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return errBadRequest("invalid_json", "the body must hold exactly one JSON value")
	}
	return nil
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
		return errBadRequest("invalid_json", "wrong JSON type for "+where+": expected "+typeErr.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return errBadRequest("invalid_json", strings.TrimPrefix(err.Error(), "json: "))
	}
	return errBadRequest("invalid_json", "the body is not valid JSON: "+err.Error())
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
