package bot

import (
	"strings"
	"unicode"
)

// SplitArgs splits a command's argument text into words. White space
// separates words; "double", 'single', “curly double” and ‘curly single’
// quotes keep a phrase together (phones turn straight quotes into curly
// ones); an unterminated quote runs to the end. Quotes inside a word join it
// with the quoted part: a"b c" is `ab c`. There are no escapes.
func SplitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	inWord := false
	var closing rune
	for _, r := range s {
		switch {
		case closing != 0:
			if r == closing || (closing == '”' && r == '"') {
				closing = 0
				continue
			}
			cur.WriteRune(r)
		case unicode.IsSpace(r):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '"' || r == '\'':
			closing, inWord = r, true
		case r == '“':
			closing, inWord = '”', true
		case r == '‘':
			closing, inWord = '’', true
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// Help registers a command (e.g. "!help") that lists the commands the asking
// person may use, with their usage and description, in registration order;
// "!help <command>" shows one command with its aliases. Hidden commands, and
// commands whose allow-lists or scopes refuse the asker, are left out.
func (g *Routes) Help(trigger string) *Route {
	return g.Command(trigger, func(c *Context) error {
		_, err := c.Reply(c.router.HelpText(c, c.Arg(0)))
		return err
	}).Describe("list the commands, or show one").Usage("[command]")
}

// HelpText is the text the Help command answers with for c; topic selects one
// command ("" lists all).
func (r *Router) HelpText(c *Context, topic string) string {
	visible := func(rt *Route) bool {
		return rt.kind == kindCommand && rt.h != nil && !rt.hidden && (c == nil || rt.accepts(c))
	}
	if topic != "" {
		for _, rt := range r.routes {
			if !visible(rt) {
				continue
			}
			for _, t := range rt.triggers {
				if strings.EqualFold(t, topic) || strings.EqualFold(strings.TrimLeft(t, "!/."), strings.TrimLeft(topic, "!/.")) {
					var b strings.Builder
					b.WriteString(helpLine(rt))
					if len(rt.triggers) > 1 {
						b.WriteString("\nAlso: " + strings.Join(rt.triggers[1:], ", "))
					}
					return b.String()
				}
			}
		}
		return "No command " + topic + ". Send the help command alone for the list."
	}
	var lines []string
	for _, rt := range r.routes {
		if visible(rt) {
			lines = append(lines, helpLine(rt))
		}
	}
	if len(lines) == 0 {
		return "No commands available."
	}
	return "Commands:\n" + strings.Join(lines, "\n")
}

func helpLine(rt *Route) string {
	s := rt.triggers[0]
	if rt.usage != "" {
		s += " " + rt.usage
	}
	if rt.description != "" {
		s += " — " + rt.description
	}
	return s
}
