package api

import (
	"net/http"
	"strings"
)

// MelangeFault is the body of a Melange (/v0.1/ipam) error. It is sent
// under the name of its HTTP error class (MelangeErrorName):
//
//	{"NotFound": {"code": 404, "message": "The resource could not be found.", "detail": "IpBlock Not Found"}}
//
// In XML (a .xml suffix or Accept: application/xml) the fields are
// attributes of the element named after the class:
//
//	<NotFound code="404" message="The resource could not be found." detail="IpBlock Not Found"></NotFound>
type MelangeFault struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Detail  string `json:"detail"`
}

// melangeMessages are the stock messages of the HTTP error classes
// (webob's explanations).
var melangeMessages = map[int]string{
	http.StatusBadRequest:            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
	http.StatusUnauthorized:          "This server could not verify that you are authorized to access the document you requested.",
	http.StatusForbidden:             "Access was denied to this resource.",
	http.StatusNotFound:              "The resource could not be found.",
	http.StatusMethodNotAllowed:      "The method is not allowed for this resource.",
	http.StatusConflict:              "There was a conflict when trying to complete your request.",
	http.StatusPreconditionFailed:    "Request precondition failed.",
	http.StatusRequestEntityTooLarge: "The body of your request was too large for this server.",
	http.StatusUnprocessableEntity:   "Unable to process the contained instructions",
	http.StatusInternalServerError:   "The server has either erred or is incapable of performing the requested operation.",
	http.StatusServiceUnavailable:    "The server is currently unavailable. Please try again at a later time.",
}

// MelangeErrorName is the error class name of status without its HTTP
// prefix: BadRequest, NotFound, Conflict, UnprocessableEntity, ...
func MelangeErrorName(status int) string {
	switch status {
	case http.StatusUnprocessableEntity:
		return "UnprocessableEntity"
	case http.StatusRequestEntityTooLarge:
		return "RequestEntityTooLarge"
	case http.StatusInternalServerError:
		return "InternalServerError"
	}
	text := http.StatusText(status)
	if text == "" {
		return "InternalServerError"
	}
	return strings.NewReplacer(" ", "", "-", "").Replace(text)
}

// NewMelangeError builds the Melange error body for status and detail.
func NewMelangeError(status int, detail string) map[string]MelangeFault {
	msg, ok := melangeMessages[status]
	if !ok {
		msg = http.StatusText(status)
	}
	return map[string]MelangeFault{MelangeErrorName(status): {Code: status, Message: msg, Detail: detail}}
}
