package signal

import (
	"reflect"
	"testing"
)

func TestMentionBuilder(t *testing.T) {
	var b MentionBuilder
	b.AddText("😀 hi ").AddMention(bobUUID).AddText(", ping ").AddMention(alice).AddText(" 👍🏽")
	wantText := "😀 hi \uFFFC, ping \uFFFC 👍🏽"
	if b.Text() != wantText {
		t.Errorf("Text = %q, want %q", b.Text(), wantText)
	}
	// 😀 is two units, so the first placeholder is at 6, not at code point 5.
	want := []OutgoingMention{{Author: bobUUID, Start: 6, Length: 1}, {Author: alice, Start: 14, Length: 1}}
	got := b.Mentions()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Mentions = %+v, want %+v", got, want)
	}
	for _, m := range got {
		if s, err := SliceUTF16(b.Text(), int(m.Start), int(m.Length)); err != nil || s != MentionPlaceholder {
			t.Errorf("mention at %d covers %q, %v", m.Start, s, err)
		}
	}
	got[0].Author = "changed"
	if b.Mentions()[0].Author != bobUUID {
		t.Error("Mentions returns the builder's own slice")
	}
	var empty MentionBuilder
	if empty.Text() != "" || empty.Mentions() != nil {
		t.Error("zero builder is not empty")
	}
}

// TestEmojiBeforeMention: offsets are UTF-16 units, so an emoji before a
// mention shifts it by two (seed §9 item 3: the Python original counted code
// points).
func TestEmojiBeforeMention(t *testing.T) {
	raw := `{"envelope":{"sourceUuid":"` + aliceUUID + `","sourceNumber":"+15550000002","timestamp":5,"dataMessage":{"timestamp":5,` +
		`"message":"👍 \uFFFC !ping","mentions":[{"name":"+15550000001","number":"+15550000001","uuid":"` + botUUID + `","start":3,"length":1}]}},"account":"+15550000001"}`
	f := mustDecode(t, []byte(raw))
	d := f.Data()
	if s, err := SliceUTF16(d.Text(), 3, 1); err != nil || s != MentionPlaceholder {
		t.Fatalf("slice at the mention = %q, %v", s, err)
	}
	if got := d.TextWithoutMentionsOf(botUUID); got != "👍 !ping" {
		t.Errorf("TextWithoutMentionsOf = %q, want %q", got, "👍 !ping")
	}
	if got := d.RenderMentions(func(Mention) string { return "Bot" }); got != "👍 @Bot !ping" {
		t.Errorf("RenderMentions = %q", got)
	}
}

func TestStripMentions(t *testing.T) {
	me := Mention{Number: bot, UUID: botUUID, Length: 1}
	other := Mention{Number: alice, UUID: aliceUUID, Length: 1}
	at := func(m Mention, start int64) Mention { m.Start = Int64(start); return m }
	tests := []struct {
		name     string
		text     string
		mentions []Mention
		want     string
	}{
		{"leading command", "\uFFFC !ping", []Mention{at(me, 0)}, "!ping"},
		{"middle", "Hey \uFFFC can you check?", []Mention{at(me, 4)}, "Hey can you check?"},
		{"trailing", "ping \uFFFC", []Mention{at(me, 5)}, "ping"},
		{"trailing then spaces", "ping \uFFFC  ", []Mention{at(me, 5)}, "ping"},
		{"twice", "\uFFFC \uFFFC go", []Mention{at(me, 0), at(me, 2)}, "go"},
		{"adjacent", "\uFFFC\uFFFC go", []Mention{at(me, 0), at(me, 1)}, "go"},
		{"other kept", "\uFFFC \uFFFC hi", []Mention{at(other, 0), at(me, 2)}, "\uFFFC hi"},
		{"only others", "\uFFFC hi ", []Mention{at(other, 0)}, "\uFFFC hi "},
		{"no space", "a\uFFFCb", []Mention{at(me, 1)}, "ab"},
		{"newline after leading mention", "\uFFFC\n!ping", []Mention{at(me, 0)}, "!ping"},
		{"text untouched elsewhere", "  x  \uFFFC y", []Mention{at(me, 5)}, "  x  y"},
		{"out of range skipped", "\uFFFC hi", []Mention{at(me, 9)}, "\uFFFC hi"},
		{"splits emoji skipped", "👍\uFFFC", []Mention{at(me, 1)}, "👍\uFFFC"},
		{"zero length skipped", "\uFFFC hi", []Mention{{UUID: botUUID, Start: 0, Length: 0}}, "\uFFFC hi"},
		{"negative skipped", "\uFFFC hi", []Mention{{UUID: botUUID, Start: -1, Length: 1}}, "\uFFFC hi"},
		{"overlap skipped", "\uFFFC\uFFFC x", []Mention{{UUID: botUUID, Start: 0, Length: 2}, at(me, 1)}, "x"},
		{"unsorted", "\uFFFC a \uFFFC", []Mention{at(me, 4), at(me, 0)}, "a"},
		{"no mentions", "hi", nil, "hi"},
	}
	for _, tt := range tests {
		if got := StripMentions(tt.text, tt.mentions, botUUID); got != tt.want {
			t.Errorf("%s: StripMentions = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := StripMentions("\uFFFC hi", []Mention{at(me, 0)}); got != "\uFFFC hi" {
		t.Errorf("no ids: %q", got)
	}
}

func TestMentionIs(t *testing.T) {
	m := Mention{Name: bot, Number: bot, UUID: botUUID}
	hidden := Mention{Name: bobUUID, UUID: bobUUID}
	legacyOnly := Mention{Name: bobUUID}
	tests := []struct {
		m    Mention
		ids  []string
		want bool
	}{
		{m, []string{botUUID}, true},
		{m, []string{"0A0B0C0D-1111-2222-3333-444455556666"}, true},
		{m, []string{bot}, true},
		{m, []string{alice, bot}, true},
		{m, []string{alice}, false},
		{m, nil, false},
		{m, []string{""}, false},
		{hidden, []string{""}, false},
		{hidden, []string{bobUUID}, true},
		{legacyOnly, []string{"B7E2D0C4-1A2B-4C3D-8E9F-0A1B2C3D4E5F"}, true},
		{Mention{}, []string{""}, false},
	}
	for _, tt := range tests {
		if got := tt.m.Is(tt.ids...); got != tt.want {
			t.Errorf("%+v.Is(%q) = %v, want %v", tt.m, tt.ids, got, tt.want)
		}
	}
}

func TestRenderMentions(t *testing.T) {
	ms := []Mention{
		{Number: bot, UUID: botUUID, Start: 4, Length: 1},
		{UUID: bobUUID, Start: 6, Length: 1},
		{Start: 99, Length: 1}, // invalid: ignored
	}
	text := "Hey \uFFFC \uFFFC!"
	if got := RenderMentions(text, ms, nil); got != "Hey @"+bot+" @"+bobUUID+"!" {
		t.Errorf("fallback names: %q", got)
	}
	names := func(m Mention) string {
		if m.UUID == botUUID {
			return "Bot"
		}
		return ""
	}
	if got := RenderMentions(text, ms, names); got != "Hey @Bot @"+bobUUID+"!" {
		t.Errorf("names: %q", got)
	}
	if got := RenderMentions("plain", nil, nil); got != "plain" {
		t.Errorf("no mentions: %q", got)
	}
}

func TestOutgoingMentions(t *testing.T) {
	in := []Mention{
		{Number: bot, UUID: botUUID, Start: 1, Length: 1},
		{UUID: bobUUID, Start: 3, Length: 1},
		{Name: "legacy", Start: 5, Length: 1},
		{Start: 7, Length: 1}, // no identifier: dropped
	}
	want := []OutgoingMention{{bot, 1, 1}, {bobUUID, 3, 1}, {"legacy", 5, 1}}
	if got := OutgoingMentions(in); !reflect.DeepEqual(got, want) {
		t.Errorf("OutgoingMentions = %+v, want %+v", got, want)
	}
	if OutgoingMentions(nil) != nil {
		t.Error("OutgoingMentions(nil) is not nil")
	}
}

func TestNilDataMessageHelpers(t *testing.T) {
	var d *DataMessage
	var s *SyncMessage
	if d.Text() != "" || d.TextWithoutMentionsOf(bot) != "" || d.RenderMentions(nil) != "" || !s.IsEmpty() {
		t.Error("nil data message helpers returned text")
	}
}
