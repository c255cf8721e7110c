package server_test

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestReadmeLinks checks the relative links of every Markdown page of the
// repository (the README, docs/, the examples' and tools' READMEs): each
// names a file or folder that exists and, with a #fragment into a Markdown
// page, one of that page's headings. Pages move between the README and
// docs/, and a link left pointing at the old place is easy to miss.
func TestReadmeLinks(t *testing.T) {
	const root = ".."
	pages, err := markdownPages(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) == 0 {
		t.Fatal("no Markdown page found")
	}
	anchors := make(map[string]map[string]bool) // page → its headings' anchors
	anchorsOf := func(page string) (map[string]bool, error) {
		if a, ok := anchors[page]; ok {
			return a, nil
		}
		text, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(page)))
		if err != nil {
			return nil, err
		}
		anchors[page] = headingAnchors(string(text))
		return anchors[page], nil
	}
	for _, page := range pages {
		text, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(page)))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range markdownLinks(string(text)) {
			target, frag, _ := strings.Cut(l.target, "#")
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			dest := page // a bare #fragment is into the page itself
			if target != "" {
				dest = path.Join(path.Dir(page), target)
				if strings.HasPrefix(dest, "../") {
					t.Errorf("%s:%d: link %q leaves the repository", page, l.line, l.target)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(dest))); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", page, l.line, l.target, dest)
					continue
				}
			}
			if frag == "" || !strings.HasSuffix(dest, ".md") {
				continue
			}
			a, err := anchorsOf(dest)
			if err != nil {
				t.Errorf("%s:%d: link %q: %v", page, l.line, l.target, err)
				continue
			}
			if !a[frag] {
				t.Errorf("%s:%d: link %q: %s has no heading whose anchor is #%s", page, l.line, l.target, dest, frag)
			}
		}
	}
}

// markdownPages returns the Markdown files under root, relative to it with
// forward slashes, leaving out hidden folders, node_modules and testdata.
func markdownPages(root string) ([]string, error) {
	var pages []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			pages = append(pages, filepath.ToSlash(rel))
		}
		return nil
	})
	return pages, err
}

type markdownLink struct {
	target string
	line   int
}

// inlineLink is the (target) part of an inline link or image, [text](target).
var inlineLink = regexp.MustCompile(`\]\(([^()\s]+)\)`)

// markdownLinks returns the inline links of a page outside code: fenced
// blocks and code spans, which may show link syntax without meaning it.
func markdownLinks(page string) []markdownLink {
	text := stripCodeSpans(stripFences(page))
	var links []markdownLink
	for _, m := range inlineLink.FindAllStringSubmatchIndex(text, -1) {
		links = append(links, markdownLink{
			target: text[m[2]:m[3]],
			line:   strings.Count(text[:m[0]], "\n") + 1,
		})
	}
	return links
}

// stripFences blanks the lines of fenced code blocks, keeping the line count.
func stripFences(page string) string {
	lines := strings.Split(page, "\n")
	fence := "" // the open fence's backticks or tildes
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case fence != "":
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
			}
			lines[i] = ""
		case strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~"):
			fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, trimmed[:1]))]
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// stripCodeSpans removes code spans, text between two equal runs of
// backticks (which may cross lines), keeping their newlines so that line
// numbers stay right. A run that no run of the same length closes is left.
func stripCodeSpans(text string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(text, '`')
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		n := len(text[i:]) - len(strings.TrimLeft(text[i:], "`"))
		open := text[i : i+n]
		end := closingRun(text[i+n:], n)
		if end < 0 {
			b.WriteString(text[:i+n])
			text = text[i+n:]
			continue
		}
		b.WriteString(text[:i])
		b.WriteString(strings.Repeat("\n", strings.Count(text[i+n:i+n+end], "\n")))
		text = text[i+n+end+len(open):]
	}
}

// closingRun returns where in s a run of exactly n backticks starts, or -1.
func closingRun(s string, n int) int {
	for i := 0; i < len(s); {
		if s[i] != '`' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '`' {
			j++
		}
		if j-i == n {
			return i
		}
		i = j
	}
	return -1
}

var heading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)

// headingAnchors returns the anchors GitHub gives a page's headings: the
// heading's text in lower case, without punctuation but hyphens and
// underscores, with each space a hyphen; a repeated anchor gets -1, -2, ...
func headingAnchors(page string) map[string]bool {
	anchors := make(map[string]bool)
	seen := make(map[string]int)
	for _, line := range strings.Split(stripFences(page), "\n") {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var slug strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				slug.WriteRune(r)
			}
		}
		a := slug.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		anchors[a] = true
	}
	return anchors
}
