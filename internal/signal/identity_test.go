package signal

import (
	"testing"
)

func TestIdentityKey(t *testing.T) {
	tests := []struct {
		id   Identity
		want string
	}{
		{Identity{Account: bot, Sender: aliceUUID, Device: 1, Kind: KindMessage, Timestamp: 1767225600123},
			"+15550000001:" + aliceUUID + ":1:1767225600123:message"},
		{Identity{Sender: "+15550000002", Kind: KindReceipt, Timestamp: -1},
			":+15550000002:0:-1:receipt"},
		// Separators inside values are escaped, so the key stays unambiguous.
		{Identity{Account: "a:b", Sender: "c%d", Device: 2, Kind: "x:y", Timestamp: 3},
			"a%3Ab:c%25d:2:3:x%3Ay"},
	}
	for _, tt := range tests {
		if got := tt.id.Key(); got != tt.want {
			t.Errorf("Key(%+v) = %q, want %q", tt.id, got, tt.want)
		}
	}
	// Fields that would collide if concatenated naively do not.
	a := Identity{Account: "a:b", Sender: "c"}.Key()
	b := Identity{Account: "a", Sender: "b:c"}.Key()
	if a == b {
		t.Errorf("keys collide: %q", a)
	}
}

func TestIdentityDistinguishes(t *testing.T) {
	base := string(readTestdata(t, "a_direct_text.json"))
	key := func(raw string) string {
		t.Helper()
		id, ok := mustDecode(t, []byte(raw)).Identity()
		if !ok {
			t.Fatalf("no identity for %s", raw)
		}
		return id.Key()
	}
	k := key(base)
	variants := map[string][2]string{
		"other device":    {`"sourceDevice":1`, `"sourceDevice":2`},
		"other timestamp": {`"timestamp":1767225600123,"serverReceivedTimestamp"`, `"timestamp":1767225600124,"serverReceivedTimestamp"`},
		"other account":   {`"account":"+15550000001"`, `"account":"+15550000009"`},
		"other sender":    {aliceUUID, bobUUID},
		"other kind":      {`"message":"/help"`, `"message":null`},
	}
	for name, r := range variants {
		v := string(readTestdataReplaced(t, "a_direct_text.json", r[0], r[1]))
		if key(v) == k {
			t.Errorf("%s: same identity key %q", name, k)
		}
	}
	// Copies that differ only in metadata that is not part of the event's
	// identity (server delivery time, display name) stay duplicates.
	same := map[string][2]string{
		"delivered later": {`"serverDeliveredTimestamp":1767225600789`, `"serverDeliveredTimestamp":1767225600999`},
		"renamed contact": {`"sourceName":"Alice"`, `"sourceName":"Alice B."`},
	}
	for name, r := range same {
		v := string(readTestdataReplaced(t, "a_direct_text.json", r[0], r[1]))
		if key(v) != k {
			t.Errorf("%s: identity changed", name)
		}
	}
}

func TestIdentityAbsent(t *testing.T) {
	for _, raw := range []string{
		`{"error":"x"}`,
		`{"foo":1}`,
		`{"account":"+15550000001","exception":{"type":"X"}}`,
		`{"envelope":{"timestamp":5}}`, // no sender
		`{"envelope":{"sourceUuid":"` + aliceUUID + `","timestamp":0,"receiptMessage":{}}}`,
	} {
		if id, ok := mustDecode(t, []byte(raw)).Identity(); ok {
			t.Errorf("%s: identity %+v", raw, id)
		}
	}
}

func TestRawDigest(t *testing.T) {
	if got := RawDigest(nil); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("RawDigest(nil) = %s", got)
	}
	if got := RawDigest([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("RawDigest(abc) = %s", got)
	}
}
