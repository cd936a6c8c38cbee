package errs

import "net/http"

// Code is a stable, documented error code such as "not_found". Codes are part
// of the public API: never rename one, only add.
type Code string

// The registered codes. Add a code here and in registry below, then run
// `go test ./errs -run TestErrorsDoc -update` to refresh docs/ERRORS.md.
const (
	Invalid              Code = "invalid"
	BadFilter            Code = "bad_filter"
	Unauthorized         Code = "unauthorized"
	Forbidden            Code = "forbidden"
	NotFound             Code = "not_found"
	Conflict             Code = "conflict"
	RevisionConflict     Code = "revision_conflict"
	TooLarge             Code = "too_large"
	UnsupportedMediaType Code = "unsupported_media_type"
	QuotaExceeded        Code = "quota_exceeded"
	TooManyRequests      Code = "too_many_requests"
	MethodNotAllowed     Code = "method_not_allowed"
	Unavailable          Code = "unavailable"
	Timeout              Code = "timeout"
	Internal             Code = "internal"
)

// Info describes a registered code.
type Info struct {
	Code Code
	// HTTPStatus is the status the gateway answers with.
	HTTPStatus int
	// Description is the default message for people, used when an error
	// carries no message of its own.
	Description string
}

// registry is read-only: it is the single source of truth for codes, their
// statuses and docs/ERRORS.md. Order is the order of the documentation.
//
// quota_exceeded answers 403 rather than 429: a quota is a standing limit on
// what an account may own (machines, GiB of volumes), lifted by deleting
// resources or by an administrator, not by waiting and retrying, which is
// what 429 tells clients (and their automatic retry loops) to do. OpenStack
// and the original StratusLab answered 403 for the same condition.
var registry = [...]Info{
	{Invalid, http.StatusBadRequest, "The request is not valid: check the attributes and their values."},
	{BadFilter, http.StatusBadRequest, "The $filter, $orderby, $first, $last or $select parameter cannot be parsed."},
	{Unauthorized, http.StatusUnauthorized, "Authentication is required or the credentials were refused."},
	{Forbidden, http.StatusForbidden, "You are not allowed to do this on this resource."},
	{NotFound, http.StatusNotFound, "The resource does not exist or you may not see it."},
	{Conflict, http.StatusConflict, "The resource is not in a state that allows this, or it already exists."},
	{RevisionConflict, http.StatusConflict, "The resource changed since you read it: read it again and retry."},
	{TooLarge, http.StatusRequestEntityTooLarge, "The request body is larger than the server accepts."},
	{MethodNotAllowed, http.StatusMethodNotAllowed, "This HTTP method is not allowed on this URL: the Allow header lists those that are."},
	{UnsupportedMediaType, http.StatusUnsupportedMediaType, "The request body has a content type the server does not accept."},
	{QuotaExceeded, http.StatusForbidden, "The request would exceed your quota: delete resources or ask an administrator to raise it."},
	{TooManyRequests, http.StatusTooManyRequests, "Too many failed attempts: wait a little before trying again."},
	{Unavailable, http.StatusServiceUnavailable, "A service needed for this request is unavailable: retry later."},
	{Timeout, http.StatusGatewayTimeout, "The request did not complete in time: retry later."},
	{Internal, http.StatusInternalServerError, "An internal error occurred: the administrators can find details in the logs."},
}

// Registry returns every registered code in documentation order.
func Registry() []Info {
	return append([]Info(nil), registry[:]...)
}

// Lookup returns the registration of c, or false for a code not in the
// registry (for instance one received from a newer peer).
func Lookup(c Code) (Info, bool) {
	for _, in := range registry {
		if in.Code == c {
			return in, true
		}
	}
	return Info{}, false
}

// HTTPStatus returns the HTTP status for c; 500 for an unknown code.
func HTTPStatus(c Code) int {
	if in, ok := Lookup(c); ok {
		return in.HTTPStatus
	}
	return http.StatusInternalServerError
}

// Description returns the default message for c; the one of Internal for an
// unknown code.
func (c Code) Description() string {
	if in, ok := Lookup(c); ok {
		return in.Description
	}
	in, _ := Lookup(Internal)
	return in.Description
}

// String returns the code itself.
func (c Code) String() string { return string(c) }
