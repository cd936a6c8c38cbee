package errs

import commonv1 "stratuslab.dev/proto/stratus/common/v1"

// ToProto converts err to the wire form carried by CommandFailed events and
// query replies; nil for a nil error.
func ToProto(err error) *commonv1.Error {
	if err == nil {
		return nil
	}
	return &commonv1.Error{Code: string(CodeOf(err)), Message: MessageOf(err)}
}

// FromProto converts a wire error back to an error carrying its code and
// message; nil for nil. A missing code becomes Internal; a code this build
// does not know is kept as is, so that it can be passed on unchanged.
func FromProto(pe *commonv1.Error) error {
	if pe == nil {
		return nil
	}
	c := Code(pe.GetCode())
	if c == "" {
		c = Internal
	}
	return New(c, pe.GetMessage())
}
