package streams

import (
	"strings"
	"testing"
)

// hashTag returns the part of a key Redis Cluster hashes: the content of the
// first {...} with at least one character.
func hashTag(key string) string {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return key
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return key
	}
	return key[i+1 : i+1+j]
}

func TestShardKeysShareOneTagPerShard(t *testing.T) {
	k, err := NewKeys("sc", "+15550000001")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 7, 255} {
		keys := []string{k.Stream(n), k.DLQ(n), k.Lease(n), k.LeaseEpoch(n), k.Attempts(n),
			k.Dedup(n, "id"), k.State(n, "u:x"), k.Sent(n, "1-0")}
		want := hashTag(k.Stream(n))
		for _, key := range keys {
			if got := hashTag(key); got != want {
				t.Errorf("shard %d: key %s has tag %q, want %q", n, key, got, want)
			}
		}
	}
	if hashTag(k.Stream(1)) == hashTag(k.Stream(2)) {
		t.Errorf("different shards share a tag")
	}
	for _, key := range []string{k.Meta(), k.Leader(), k.LeaderEpoch(), k.Quarantine(), k.Workers(), k.Rate(), k.APISemaphore(), k.Audit()} {
		if hashTag(key) != k.Account() {
			t.Errorf("global key %s tag %q, want %q", key, hashTag(key), k.Account())
		}
	}
}

func TestKeysCarryNoPhoneNumber(t *testing.T) {
	k, _ := NewKeys("sc", "+15550000001")
	for _, key := range []string{k.Meta(), k.Stream(3), k.UserLock("+15550000001"), k.State(1, "n:+15550000001")} {
		if strings.Contains(key, "5550000001") {
			t.Errorf("key %s contains the phone number", key)
		}
	}
	if got := k.Stream(3); got != "sc:{"+AccountID("+15550000001")+".s3}:in" {
		t.Errorf("stream key = %s", got)
	}
}

func TestNewKeysRefusesBadPrefix(t *testing.T) {
	for _, p := range []string{"", "a{b", "a:b", "has space", "x}"} {
		if _, err := NewKeys(p, "+1"); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}

func TestShardOfIsStableAndSpread(t *testing.T) {
	// Pinned values: changing the hash silently would reorder conversations
	// across shards on upgrade.
	pinned := []struct {
		conv      string
		s64, s256 int
	}{
		{"u:3f1c7a52-8e0b-4d1e-9a52-5a0c2b7d9e11", 6, 6},
		{"g:R6fG4/C/ETxPPxIu+ObgS+hSl6DmDkBP7llnAf8KplU=", 14, 142},
		{"n:+15550000002", 60, 124},
	}
	for _, p := range pinned {
		if got := ShardOf(p.conv, 64); got != p.s64 {
			t.Errorf("ShardOf(%s, 64) = %d, want %d", p.conv, got, p.s64)
		}
		if got := ShardOf(p.conv, 256); got != p.s256 {
			t.Errorf("ShardOf(%s, 256) = %d, want %d", p.conv, got, p.s256)
		}
	}
	if AccountID("+15550000001") != "8e89f1d43d07" {
		t.Errorf("AccountID changed: %s", AccountID("+15550000001"))
	}
	counts := make([]int, 16)
	for i := 0; i < 16000; i++ {
		counts[ShardOf("u:conv-"+itoa(i), 16)]++
	}
	for s, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("shard %d got %d of 16000 conversations; want ~1000", s, c)
		}
	}
	if ShardOf("x", 1) != 0 || ShardOf("x", 0) != 0 {
		t.Error("single shard must be 0")
	}
}

func itoa(i int) string {
	const d = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{d[i%10]}, b...)
	}
	return string(b)
}
