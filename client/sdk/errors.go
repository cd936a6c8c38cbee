package sdk

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Error is a CIMI error answered by the cloud: the HTTP status, the stable
// code (invalid, unauthorized, not_found, ...) and a message for people.
type Error struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// IsCode reports whether err is a cloud error with the given stable code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// NetError says the cloud could not be reached at all: nothing answered, the
// name does not resolve, or its certificate is not trusted. Endpoint is the
// base URL tried.
type NetError struct {
	Endpoint string
	Err      error
}

func (e *NetError) Error() string {
	return fmt.Sprintf("cannot reach %s: %s", e.Endpoint, reason(e.Err))
}

func (e *NetError) Unwrap() error { return e.Err }

// reason turns a transport error into the few words a person needs.
func reason(err error) string {
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		return "no such host " + dns.Name
	case errors.As(err, &unknownCA):
		return "its certificate is not signed by an authority you trust (set ca_file, or --insecure for a test cloud)"
	case errors.As(err, &hostname):
		return "its certificate is for another name: " + hostname.Error()
	case errors.As(err, &invalid):
		return "its certificate is not valid: " + invalid.Error()
	case errors.As(err, &netErr) && netErr.Timeout():
		return "no answer in time"
	}
	return err.Error()
}

// JobError is a job that ended in FAILED (or STOPPED): the job as last read,
// whose StatusMessage says why.
type JobError struct {
	Job *Job
}

func (e *JobError) Error() string {
	msg := e.Job.StatusMessage
	if msg == "" {
		msg = "no reason given"
	}
	return fmt.Sprintf("job %s ended %s: %s", e.Job.ID, e.Job.State, msg)
}
