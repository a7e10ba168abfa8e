package netconf

import "fmt"

// FieldError says which netconf field is invalid and why. The plugin turns
// it into CNI error code 7 (invalid network config).
type FieldError struct {
	Field   string
	Problem string
}

// Error names the field and the problem.
func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid netconf: field %q: %s", e.Field, e.Problem)
}

// DecodeError says that stdin is not a JSON object at all. The plugin turns
// it into CNI error code 6 (failed to decode content).
type DecodeError struct {
	Err error
}

// Error says decoding failed.
func (e *DecodeError) Error() string {
	// The JSON error names a position and a character, never the content.
	return fmt.Sprintf("decode netconf: %v", e.Err)
}

// Unwrap returns the JSON error.
func (e *DecodeError) Unwrap() error { return e.Err }

// ArgsError says which CNI_ARGS key is invalid and why. The plugin turns it
// into CNI error code 4 (invalid environment variables).
type ArgsError struct {
	Key     string
	Problem string
}

// Error names the key and the problem.
func (e *ArgsError) Error() string {
	return fmt.Sprintf("invalid CNI_ARGS: key %q: %s", e.Key, e.Problem)
}
