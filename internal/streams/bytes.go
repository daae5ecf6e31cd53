package streams

import "unsafe"

// readOnlyBytes returns the bytes of s without copying them. The worker
// parses every entry it reads, and copying each ~400-byte payload out of the
// string go-redis returned was its largest allocation per message. The slice
// shares s's memory: nobody may write through it (Entry.Payload is read-only
// everywhere; appending to it copies, since its capacity is its length).
func readOnlyBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// stringView returns b as a string without copying it; b must not change
// while the string is in use. The append path boxes its per-entry arguments
// as *string (which go-redis writes like a string): a pointer in an
// interface does not allocate, a []byte or string does, twice per entry.
func stringView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
