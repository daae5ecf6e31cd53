package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestSendResponseJSONIsMarshal(t *testing.T) {
	for _, ts := range []int64{0, 1, 1700000000123, -5} {
		one, _ := json.Marshal(sendResponse{Timestamp: strconv.FormatInt(ts, 10)})
		arr, _ := json.Marshal([]sendResponse{{Timestamp: strconv.FormatInt(ts, 10)}})
		if got := string(sendResponseJSON(ts, false)); got != string(one) {
			t.Fatalf("%d: %s, want %s", ts, got, one)
		}
		if got := string(sendResponseJSON(ts, true)); got != string(arr) {
			t.Fatalf("%d array: %s, want %s", ts, got, arr)
		}
	}
}

func TestBodyNumberMatchesTheDecodedObject(t *testing.T) {
	for body, want := range map[string]string{
		`{"number":"+1555","recipients":["+2"]}`: "+1555",
		`{"Number":"+1555"}`:                     "",
		`{"number":5}`:                           "",
		`["number"]`:                             "",
		`null`:                                   "",
		``:                                       "",
		`{"number":"+1"} trailing`:               "",
		`{"number":"+1","number":"+2"}`:          "+2",
		`{"number":"+1"`:                         "",
	} {
		if got := bodyNumber([]byte(body)); got != want {
			t.Errorf("bodyNumber(%q) = %q, want %q", body, got, want)
		}
	}
}

func TestReadBody(t *testing.T) {
	for _, s := range []string{"", "x", strings.Repeat("y", 5000)} {
		r := httptest.NewRequest(http.MethodPost, "/v2/send", strings.NewReader(s))
		if got := string(readBody(r)); got != s {
			t.Fatalf("readBody: %d bytes, want %d", len(got), len(s))
		}
		r = httptest.NewRequest(http.MethodPost, "/v2/send", strings.NewReader(s))
		r.ContentLength = -1
		if got := string(readBody(r)); got != s {
			t.Fatalf("readBody without a length: %d bytes, want %d", len(got), len(s))
		}
	}
}
