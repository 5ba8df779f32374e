package config

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

// fileClients validates the YAML file and returns its clients, with the
// environment's settings filling in what entries omit.
func fileClients(f *fileInput, env []value, p *problems, noClientSecret bool) (cands []*candidate) {
	at := Error{Source: f.source}
	var tooLarge *safefile.TooLargeError
	switch {
	case len(f.data) > MaxFileSize || errors.As(f.readErr, &tooLarge):
		p.add(at, nil, fmt.Sprintf("the file is larger than %d bytes (%d KiB); a configuration file is a few kilobytes, so check that %s names the right file", MaxFileSize, MaxFileSize>>10, EnvConfig))
		return nil
	case f.readErr != nil:
		p.bad(at.at(EnvConfig, 0), f.readErr, "names a file that cannot be read: %s", printable(f.readErr.Error()))
		return nil
	}
	// yaml.v3 panics internally and recovers in Decode; should any input
	// slip past that, a configuration error beats a crashed daemon.
	defer func() {
		if r := recover(); r != nil {
			cands = nil
			p.add(at, nil, fmt.Sprintf("the file cannot be parsed as YAML (%s)", quote(fmt.Sprint(r))))
		}
	}()
	doc := decodeRoot(f.data, at, p)
	if doc == nil {
		return nil
	}
	var list *yaml.Node
	switch doc = resolve(p, at, doc); {
	case isNull(doc):
	case doc.Kind != yaml.MappingNode:
		p.add(at.at("", doc.Line), nil, "expected a mapping with a clients: key at the top level, found "+shape(doc))
		return nil
	default:
		if n := mapping(p, at, doc, []string{"clients"}, "unknown top-level key %s; the only allowed key is clients%s")["clients"]; n != nil {
			list = resolve(p, at, n)
		}
	}
	switch {
	case list != nil && list.Kind == 0: // an alias of a collection, already reported
		return nil
	case list == nil || isNull(list):
		p.add(at.at("clients", 0), ErrNoClients, "the file lists no clients; list at least one under a top-level clients: key")
		return nil
	case list.Kind != yaml.SequenceNode:
		p.add(at.at("", list.Line), nil, "expected a list of clients under clients:, found "+shape(list))
		return nil
	case len(list.Content) == 0:
		p.add(at.at("clients", list.Line), ErrNoClients, "clients is empty; list at least one client")
		return nil
	}
	for i, item := range list.Content {
		l := at
		l.Line, l.Entry = item.Line, i+1
		switch n := resolve(p, at, item); {
		case n.Kind == 0: // already reported
		case isNull(n):
			p.add(l, nil, "the entry is empty; each client needs at least a name (keys: "+clientKeys+")")
		case n.Kind != yaml.MappingNode:
			p.add(at.at("", item.Line), nil, "expected a client entry (a mapping with keys "+clientKeys+"), found "+shape(n))
		default:
			fields := mapping(p, at, n, entryKeys, "unknown key %s in a client entry; allowed keys: "+clientKeys+"%s")
			cands = append(cands, fileEntry(fields, l, env, p, noClientSecret))
		}
	}
	return cands
}

// decodeRoot parses the file and returns its one document's content. An empty
// file and a second document are refused: the second would otherwise be
// ignored, with whatever clients it lists. A syntax error is reported with
// yaml.v3's own text, which names the line and never the value.
func decodeRoot(data []byte, at Error, p *problems) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root, extra yaml.Node
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		p.add(at, nil, "the file is empty; it needs a top-level clients: list")
	case err != nil:
		p.add(at, err, "the file is not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
	case root.Kind != yaml.DocumentNode || len(root.Content) != 1:
		p.add(at, nil, "the file is not a YAML document with a top-level clients: list")
	case !errors.Is(dec.Decode(&extra), io.EOF):
		p.add(Error{Source: at.Source, Line: extra.Line}, nil,
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
func mapping(p *problems, at Error, n *yaml.Node, allowed []string, unknown string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch kr := resolve(p, at, k); {
		case kr.Kind == 0:
		case kr.Kind != yaml.ScalarNode:
			p.add(at.at("", k.Line), nil, "expected a plain key, found "+shape(kr))
		case kr.ShortTag() == "!!merge":
			p.once("merge", at.at("", k.Line), "merge keys (<<) are not supported: write each setting in the client's own entry, or set a default for every entry in the environment (such as "+EnvBaseURL+")")
		case first[kr.Value] > 0:
			p.add(at.at("", k.Line), nil, fmt.Sprintf("key %s is given twice (first at line %d)", quote(kr.Value), first[kr.Value]))
		case !slices.Contains(allowed, kr.Value):
			first[kr.Value] = k.Line
			if p.full() {
				p.more++ // the suggestion costs an edit distance per allowed key
			} else {
				hint := ""
				if s := suggest.Closest(kr.Value, allowed); s != "" {
					hint = " (did you mean " + s + "?)"
				}
				p.add(at.at("", k.Line), nil, fmt.Sprintf(unknown, quote(kr.Value), hint))
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
func resolve(p *problems, at Error, n *yaml.Node) *yaml.Node {
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
	p.once("alias", at.at("", n.Line), fmt.Sprintf("an alias (*%s) stands for %s; an alias may stand only for a single value, such as a URL", n.Value, what))
	return &yaml.Node{}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalar reads key of an entry, if the entry has it, as a single value; see
// given.
func scalar(p *problems, l Error, key string, fields map[string]*yaml.Node) (given, bool) {
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
	p.bad(l.at(key, line), nil, "must be a single value, not %s", shape(n))
	return given{line: line}, true
}

// fileEntry validates one entry of the clients list, given its keys. The
// name comes first so that every later message can say which client.
func fileEntry(fields map[string]*yaml.Node, l Error, env []value, p *problems, noClientSecret bool) *candidate {
	c := &candidate{at: l}
	name, ok := scalar(p, l, "name", fields)
	switch err := checkName(name.text); {
	case !ok:
		p.bad(l.at("name", 0), nil, "is missing; every client in a file needs a unique name (1 to 64 characters from A-Z a-z 0-9 . _ -)")
	case !name.shape:
	case err != nil:
		p.bad(l.at("name", name.line), err, "%s", err)
	default:
		c.client.Name = name.text
		c.nameOK, c.nameLine = true, name.line
		c.at.Client = name.text
	}
	own := read(p, func(s *Setting) (given, Error, bool) {
		if s.Key == "" {
			return given{}, Error{}, false
		}
		g, ok := scalar(p, c.at, s.Key, fields)
		return g, c.at.at(s.Key, g.line), ok
	})
	c.assemble(p, own, env, true, noClientSecret)
	return c
}
