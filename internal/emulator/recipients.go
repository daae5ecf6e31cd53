package emulator

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

const groupPrefix = "group."

// RESTGroupID converts an internal group id to the REST id: "group." + base64 of the ASCII
// bytes of the internal id (reference §6).
func RESTGroupID(internalID string) string {
	return groupPrefix + base64.StdEncoding.EncodeToString([]byte(internalID))
}

// InternalGroupID converts a REST group id back to the internal id. Like the real server it
// only strips the prefix and decodes once, failing with "Invalid group id".
func InternalGroupID(restID string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(restID, groupPrefix))
	if err != nil {
		return "", errors.New("Invalid group id")
	}
	return string(b), nil
}

type recipientKind int

const (
	recipientNumber recipientKind = iota + 1
	recipientGroup
	recipientUsername
)

// classifyRecipient mirrors getRecipientType (reference §4.1): "group." ids are decoded
// twice and must hold exactly 32 bytes; "+digits" and UUIDs are numbers; the rest are
// usernames.
func classifyRecipient(s string) (recipientKind, error) {
	if strings.HasPrefix(s, groupPrefix) {
		s1 := strings.TrimPrefix(s, groupPrefix)
		first, err := base64.StdEncoding.DecodeString(s1)
		if err == nil {
			second, err := base64.StdEncoding.DecodeString(string(first))
			if err == nil {
				if len(second) == 32 {
					return recipientGroup, nil
				}
				// The missing closing parenthesis is the real server's text.
				return recipientGroup, errors.New("Invalid Signal group size (" + strconv.Itoa(len(second)))
			}
		} else if len(s1) <= 10 {
			return recipientUsername, nil
		}
		return recipientGroup, errors.New("Invalid identifier " + s)
	}
	if isPhoneNumber(s) {
		return recipientNumber, nil
	}
	if isUUID(s) {
		return recipientNumber, nil
	}
	return recipientUsername, nil
}

// isPhoneNumber accepts "+" followed by digits or spaces; like the real check it also
// accepts the empty string.
func isPhoneNumber(s string) bool {
	for i, c := range s {
		if i == 0 {
			if c != '+' {
				return false
			}
			continue
		}
		if (c < '0' || c > '9') && c != ' ' {
			return false
		}
	}
	return true
}

// isUUID accepts the forms gofrs/uuid.FromString accepts: canonical, braced, urn:uuid:
// prefixed, and 32 hex digits.
func isUUID(s string) bool {
	switch {
	case len(s) == 45 && strings.HasPrefix(strings.ToLower(s), "urn:uuid:"):
		s = s[9:]
	case len(s) == 38 && s[0] == '{' && s[37] == '}':
		s = s[1:37]
	}
	switch len(s) {
	case 36:
		for i := 0; i < 36; i++ {
			c := s[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return false
				}
				continue
			}
			if !isHex(c) {
				return false
			}
		}
		return true
	case 32:
		for i := 0; i < 32; i++ {
			if !isHex(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
