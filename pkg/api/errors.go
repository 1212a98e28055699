package api

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// FieldError is the per-field body of a CloudCIX validation error.
type FieldError struct {
	Detail    string `json:"detail"`
	ErrorCode string `json:"error_code"`
}

// Error is the single error type of the API. It renders as the CloudCIX shape:
// {"detail","error_code"} or {"detail","errors":{field:{detail,error_code}}}.
// Errors is keyed by path ("vms[2].name"); the server's error writer nests
// the errors of array items as CloudCIX does (see NestFieldErrors), and
// UnmarshalJSON flattens them back.
type Error struct {
	Status    int                   `json:"-"`
	Detail    string                `json:"detail"`
	ErrorCode string                `json:"error_code,omitempty"`
	Errors    map[string]FieldError `json:"errors,omitempty"`
	// RetryAfter, in seconds, is sent as the Retry-After header when set.
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string {
	if len(e.Errors) == 0 {
		switch {
		case e.ErrorCode != "":
			return fmt.Sprintf("%s: %s", e.ErrorCode, e.Detail)
		case e.Status != 0: // not the API's answer (a proxy's): no code
			return fmt.Sprintf("HTTP %d: %s", e.Status, e.Detail)
		}
		return e.Detail
	}
	keys := make([]string, 0, len(e.Errors))
	for k := range e.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %s (%s)", k, e.Errors[k].Detail, e.Errors[k].ErrorCode))
	}
	return e.Detail + " " + strings.Join(parts, "; ")
}

// Errorf builds a single error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, ErrorCode: code, Detail: fmt.Sprintf(format, args...)}
}

// NotFound is the 404 returned both for missing objects and for objects the
// caller may not see.
func NotFound(code string) *Error {
	return &Error{Status: http.StatusNotFound, ErrorCode: code, Detail: "The requested object does not exist or you do not have permission to access it."}
}

// FieldErrors collects validation errors for a request body.
type FieldErrors map[string]FieldError

// Add records an error for field; the first error for a field wins.
func (f FieldErrors) Add(field, code, format string, args ...any) {
	if _, ok := f[field]; ok {
		return
	}
	f[field] = FieldError{ErrorCode: code, Detail: fmt.Sprintf(format, args...)}
}

// Err returns nil when there are no errors, else a 400 Error.
func (f FieldErrors) Err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Status: http.StatusBadRequest, Detail: "Bad request.", Errors: map[string]FieldError(f)}
}

// Generic error codes used by the shared request machinery. Service specific
// codes follow the CloudCIX pattern <app>_<service>_<method>_<nnn>.
const (
	CodeAuthMissing      = "regent_auth_001" // no token supplied
	CodeAuthInvalid      = "regent_auth_002" // unknown, revoked or expired token
	CodeAuthMinted       = "regent_auth_003" // minted by another, before its user became a global administrator (or user)
	CodeNoLeader         = "regent_cluster_001"
	CodeForwardFailed    = "regent_cluster_002"
	CodeBodyTooLarge     = "regent_request_001"
	CodeMalformedJSON    = "regent_request_002"
	CodeUnknownField     = "regent_request_003"
	CodeWrongType        = "regent_request_004"
	CodeBadQuery         = "regent_request_005"
	CodeMethodNotAllowed = "regent_request_006"
	CodeNotFoundRoute    = "regent_request_007"
	CodeInternal         = "regent_internal_001"
)
