package settings

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/clear-rotator/clear-rotator/internal/safefile"
	"github.com/clear-rotator/clear-rotator/internal/suggest"
)

// The YAML file is decoded into a yaml.Node tree, never into Go structs, and
// walked here: so that unknown and repeated keys and wrong shapes are named in
// the operator's terms (with a "did you mean"), no value that might be a
// misplaced secret is quoted, and yaml.v3's error texts need no parsing. The
// walk costs no more than the file's size: merge keys are refused, and an
// alias may stand only for a single value.

// MaxFileSize bounds the YAML file, and with it the memory a reload may
// take: a configuration is a few kilobytes (a thousand clients fit), and
// anything much larger is a wrong path or an attack.
const MaxFileSize = 256 << 10

// ErrNoEntries is the cause, for errors.Is, of a YAML file that lists no
// clients: a daemon with nothing to do is a mistake, not a choice.
var ErrNoEntries = errors.New("no clients configured")

// fileEntries validates the YAML file and returns its entries, with the
// environment's settings filling in what entries omit.
func (t *Table) fileEntries(f *File, env []Value, p *Problems, optional string) (entries []*Entry) {
	at := Error{Source: f.Source}
	var tooLarge *safefile.TooLargeError
	switch {
	case len(f.Data) > MaxFileSize || errors.As(f.ReadErr, &tooLarge):
		p.Add(at, nil, fmt.Sprintf("the file is larger than %d bytes (%d KiB); a configuration file is a few kilobytes, so check that %s names the right file", MaxFileSize, MaxFileSize>>10, t.FileVar))
		return nil
	case f.ReadErr != nil:
		p.Bad(at.At(t.FileVar, 0), f.ReadErr, "names a file that cannot be read: %s", Printable(f.ReadErr.Error()))
		return nil
	}
	// yaml.v3 panics internally and recovers in Decode; should any input
	// slip past that, a configuration error beats a crashed daemon.
	defer func() {
		if r := recover(); r != nil {
			entries = nil
			p.Add(at, nil, fmt.Sprintf("the file cannot be parsed as YAML (%s)", Quote(fmt.Sprint(r))))
		}
	}()
	doc := decodeRoot(f.Data, at, p)
	if doc == nil {
		return nil
	}
	var list *yaml.Node
	switch doc = resolve(p, at, doc); {
	case isNull(doc):
	case doc.Kind != yaml.MappingNode:
		p.Add(at.At("", doc.Line), nil, "expected a mapping with a clients: key at the top level, found "+shape(doc))
		return nil
	default:
		if n := t.mapping(p, at, doc, []string{"clients"}, "unknown top-level key %s; the only allowed key is clients%s")["clients"]; n != nil {
			list = resolve(p, at, n)
		}
	}
	switch {
	case list != nil && list.Kind == 0: // an alias of a collection, already reported
		return nil
	case list == nil || isNull(list):
		p.Add(at.At("clients", 0), ErrNoEntries, "the file lists no clients; list at least one under a top-level clients: key")
		return nil
	case list.Kind != yaml.SequenceNode:
		p.Add(at.At("", list.Line), nil, "expected a list of clients under clients:, found "+shape(list))
		return nil
	case len(list.Content) == 0:
		p.Add(at.At("clients", list.Line), ErrNoEntries, "clients is empty; list at least one client")
		return nil
	}
	for i, item := range list.Content {
		l := at
		l.Line, l.Entry = item.Line, i+1
		switch n := resolve(p, at, item); {
		case n.Kind == 0: // already reported
		case isNull(n):
			p.Add(l, nil, "the entry is empty; each client needs at least a name (keys: "+t.keyList+")")
		case n.Kind != yaml.MappingNode:
			p.Add(at.At("", item.Line), nil, "expected a client entry (a mapping with keys "+t.keyList+"), found "+shape(n))
		default:
			fields := t.mapping(p, at, n, t.keys, "unknown key %s in a client entry; allowed keys: "+t.keyList+"%s")
			entries = append(entries, t.fileEntry(fields, l, env, p, optional))
		}
	}
	return entries
}

// decodeRoot parses the file and returns its one document's content. An empty
// file and a second document are refused: the second would otherwise be
// ignored, with whatever clients it lists. A syntax error is reported with
// yaml.v3's own text, which names the line and never the value.
func decodeRoot(data []byte, at Error, p *Problems) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root, extra yaml.Node
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		p.Add(at, nil, "the file is empty; it needs a top-level clients: list")
	case err != nil:
		p.Add(at, err, "the file is not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
	case root.Kind != yaml.DocumentNode || len(root.Content) != 1:
		p.Add(at, nil, "the file is not a YAML document with a top-level clients: list")
	case !errors.Is(dec.Decode(&extra), io.EOF):
		p.Add(Error{Source: at.Source, Line: extra.Line}, nil,
			"the file contains more than one YAML document (a second ---); put all clients in one clients: list")
	default:
		return root.Content[0]
	}
	return nil
}

// mapping returns the values of the mapping n by key. A key not in allowed
// is reported with unknown (its key and a "did you mean"); so are a key given
// twice (which counts would be a guess) and a key that is not a plain scalar.
// Merge keys (<<) are refused, once per file: an entry would no longer say
// what it sets, and merges of merges let a few kilobytes cost minutes.
func (t *Table) mapping(p *Problems, at Error, n *yaml.Node, allowed []string, unknown string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch kr := resolve(p, at, k); {
		case kr.Kind == 0:
		case kr.Kind != yaml.ScalarNode:
			p.Add(at.At("", k.Line), nil, "expected a plain key, found "+shape(kr))
		case kr.ShortTag() == "!!merge":
			p.once("merge", at.At("", k.Line), "merge keys (<<) are not supported: write each setting in the client's own entry, or set a default for every entry in the environment (such as "+t.ExampleVar+")")
		case first[kr.Value] > 0:
			p.Add(at.At("", k.Line), nil, fmt.Sprintf("key %s is given twice (first at line %d)", Quote(kr.Value), first[kr.Value]))
		case !slices.Contains(allowed, kr.Value):
			first[kr.Value] = k.Line
			if p.Full() {
				p.more++ // the suggestion costs an edit distance per allowed key
			} else {
				hint := ""
				if s := suggest.Closest(kr.Value, allowed); s != "" {
					hint = " (did you mean " + s + "?)"
				}
				p.Add(at.At("", k.Line), nil, fmt.Sprintf(unknown, Quote(kr.Value), hint))
			}
		default:
			first[kr.Value] = k.Line
			out[kr.Value] = n.Content[i+1]
		}
	}
	return out
}

// shape names the YAML shape of n for messages, without its value.
func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if s, ok := map[string]string{"!!str": "a string", "!!int": "a number", "!!float": "a number", "!!bool": "a boolean", "!!null": "nothing"}[n.ShortTag()]; ok {
			return s
		}
		return "a value tagged " + n.ShortTag()
	}
	return "an unexpected node"
}

// resolve follows an alias (*name) to the value it stands for. An alias of a
// mapping or a list is refused, once per file, and resolves to an empty node
// (Kind 0) that callers skip: else a file of 100 KB could list an alias of a
// mapping of 10,000 keys thousands of times, and its walk would cost every
// key once per alias.
func resolve(p *Problems, at Error, n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.AliasNode {
		return n
	}
	if t := n.Alias; t != nil && t.Kind == yaml.ScalarNode {
		return t
	}
	what := "nothing"
	if n.Alias != nil {
		what = shape(n.Alias)
	}
	p.once("alias", at.At("", n.Line), fmt.Sprintf("an alias (*%s) stands for %s; an alias may stand only for a single value, such as a URL", n.Value, what))
	return &yaml.Node{}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalar reads key of an entry, if the entry has it, as a single value; see
// given.
func scalar(p *Problems, l Error, key string, fields map[string]*yaml.Node) (given, bool) {
	n := fields[key]
	if n == nil {
		return given{}, false
	}
	line := n.Line
	switch n = resolve(p, l, n); {
	case n.Kind == 0 || isNull(n):
		return given{}, false
	case n.Kind == yaml.ScalarNode:
		return given{strings.TrimSpace(n.Value), line, true}, true
	}
	p.Bad(l.At(key, line), nil, "must be a single value, not %s", shape(n))
	return given{line: line}, true
}

// fileEntry validates one entry of the clients list, given its keys. The
// name comes first so that every later message can say which client.
func (t *Table) fileEntry(fields map[string]*yaml.Node, l Error, env []Value, p *Problems, optional string) *Entry {
	c := &Entry{At: l}
	name, ok := scalar(p, l, "name", fields)
	switch err := checkName(name.text); {
	case !ok:
		p.Bad(l.At("name", 0), nil, "is missing; every client in a file needs a unique name (1 to 64 characters from A-Z a-z 0-9 . _ -)")
	case !name.shape:
	case err != nil:
		p.Bad(l.At("name", name.line), err, "%s", err)
	default:
		c.Name, c.NameOK, c.NameLine = name.text, true, name.line
		c.At.Client = name.text
	}
	own := t.read(p, func(s *Setting) (given, Error, bool) {
		if s.Key == "" {
			return given{}, Error{}, false
		}
		g, ok := scalar(p, c.At, s.Key, fields)
		return g, c.At.At(s.Key, g.line), ok
	})
	t.assemble(p, c, own, env, true, optional)
	return c
}
