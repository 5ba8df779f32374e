package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// The YAML file is decoded into a yaml.Node tree only, never into Go
// structs: this package walks the tree itself, so that it can name unknown
// and repeated keys and wrong shapes in the operator's terms (with a "did you
// mean"), never quote a value that might be a misplaced secret, and need not
// parse yaml.v3's error texts. The keys a client entry accepts come from the
// Settings table.

// fileClients validates the YAML file and returns its clients, with the
// environment's settings filling in what entries omit.
func fileClients(f *fileInput, env map[string]value, p *problems) (cands []*candidate) {
	at := location{source: f.source}
	if f.readErr != nil {
		p.bad(at.with(EnvConfig, 0), f.readErr, "names a file that cannot be read: %s", printable(f.readErr.Error()))
		return nil
	}
	if len(f.data) > MaxFileSize {
		p.add(at, nil, fmt.Sprintf("the file is larger than %d bytes (1 MiB); a configuration file is a few kilobytes, so check that %s names the right file", MaxFileSize, EnvConfig))
		return nil
	}
	// yaml.v3 reports problems by panicking internally and recovering in
	// Decode; should any input slip past that, a configuration error is the
	// right outcome rather than a crashed daemon.
	defer func() {
		if r := recover(); r != nil {
			cands = nil
			p.add(at, nil, fmt.Sprintf("the file cannot be parsed as YAML (%s)", quote(fmt.Sprint(r))))
		}
	}()

	root, ok := decodeRoot(f.data, at, p)
	if !ok {
		return nil
	}
	doc := resolve(p, at, root.Content[0])
	var list *yaml.Node
	switch {
	case isNull(doc):
	case doc.Kind != yaml.MappingNode:
		p.add(at.with("", doc.Line), nil, "expected a mapping with a clients: key at the top level, found "+shape(doc))
		return nil
	default:
		top := mapping(p, at, doc)
		for _, kv := range top {
			if kv.key != "clients" {
				p.add(at.with("", kv.keyLine), nil, fmt.Sprintf("unknown top-level key %s; the only allowed key is clients%s", quote(kv.key), didYouMean(kv.key, []string{"clients"})))
				continue
			}
			list = resolve(p, at, kv.val)
		}
	}
	switch {
	case list != nil && list.Kind == 0: // an alias of a collection, already reported
		return nil
	case list == nil || isNull(list):
		p.add(at.with("clients", 0), ErrNoClients, "the file lists no clients; list at least one under a top-level clients: key")
		return nil
	case list.Kind != yaml.SequenceNode:
		p.add(at.with("", list.Line), nil, "expected a list of clients under clients:, found "+shape(list))
		return nil
	case len(list.Content) == 0:
		p.add(at.with("clients", list.Line), ErrNoClients, "clients is empty; list at least one client")
		return nil
	}
	allowed := clientKeyList()
	for i, item := range list.Content {
		l := at
		l.line, l.entry = item.Line, i+1
		n := resolve(p, at, item)
		switch {
		case n.Kind == 0: // already reported
			continue
		case isNull(n):
			p.add(l, nil, "the entry is empty; each client needs at least a name (keys: "+clientKeys+")")
			continue
		case n.Kind != yaml.MappingNode:
			p.add(at.with("", item.Line), nil, "expected a client entry (a mapping with keys "+clientKeys+"), found "+shape(n))
			continue
		}
		fields := map[string]*yaml.Node{}
		for _, kv := range mapping(p, at, n) {
			if !contains(allowed, kv.key) {
				p.add(at.with("", kv.keyLine), nil, fmt.Sprintf("unknown key %s in a client entry; allowed keys: %s%s", quote(kv.key), clientKeys, didYouMean(kv.key, allowed)))
				continue
			}
			fields[kv.key] = kv.val
		}
		cands = append(cands, fileEntry(fields, l, env, p))
	}
	return cands
}

// decodeRoot parses the file into a node tree, refusing empty files and
// files with several documents: a second document would otherwise be
// silently ignored, and with it whatever clients the operator put there.
// A syntax error is reported with yaml.v3's own text, which names the line
// and never the value.
func decodeRoot(data []byte, at location, p *problems) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(at, nil, "the file is empty; it needs a top-level clients: list")
		} else {
			p.add(at, err, "the file is not valid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil, false
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		p.add(at, nil, "the file is not a YAML document with a top-level clients: list")
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p.add(location{source: at.source, line: extra.Line}, nil,
			"the file contains more than one YAML document (a second ---); put all clients in one clients: list")
		return nil, false
	}
	return &root, true
}

// keyValue is one key of a mapping with its value.
type keyValue struct {
	key     string
	keyLine int
	val     *yaml.Node
}

// mapping returns the keys of the mapping n in order. A key given twice is
// reported, since which of the two counts would be a guess; so is a key that
// is not a plain scalar. Merge keys (<<) are refused, once per file: a merge
// copies keys from elsewhere, so an entry no longer says what it sets, and
// merges of merges let a file of a few kilobytes cost minutes to expand.
func mapping(p *problems, at location, n *yaml.Node) []keyValue {
	var out []keyValue
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kr := resolve(p, at, k)
		switch {
		case kr.Kind == 0:
			continue
		case kr.Kind != yaml.ScalarNode:
			p.add(at.with("", k.Line), nil, "expected a plain key, found "+shape(kr))
			continue
		case kr.ShortTag() == "!!merge":
			p.once("merge", at.with("", k.Line), "merge keys (<<) are not supported: write each setting in the client's own entry, or set a default for every entry in the environment (such as "+EnvBaseURL+")")
			continue
		}
		if line, dup := first[kr.Value]; dup {
			p.add(at.with("", k.Line), nil, fmt.Sprintf("key %s is given twice (first at line %d)", quote(kr.Value), line))
			continue
		}
		first[kr.Value] = k.Line
		out = append(out, keyValue{kr.Value, k.Line, v})
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
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "nothing"
		}
		return "a value tagged " + n.ShortTag()
	}
	return "an unexpected node"
}

// didYouMean returns " (did you mean X?)" when word is close to one of
// candidates, and "" otherwise.
func didYouMean(word string, candidates []string) string {
	if s := Suggest(word, candidates); s != "" {
		return " (did you mean " + s + "?)"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// resolve follows an alias (*name) to the value it stands for. Only a single
// value may be aliased: an alias of a mapping or a list is refused, once per
// file, and resolves to an empty node (Kind 0) that callers skip. Otherwise a
// file of a hundred kilobytes could list an alias of a mapping with ten
// thousand keys ten thousand times, and its walk would cost each key once
// per alias. With this rule the walk is linear in the file's size.
func resolve(p *problems, at location, n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.AliasNode {
		return n
	}
	t := n.Alias
	if t == nil || t.Kind != yaml.ScalarNode {
		what := "nothing"
		if t != nil {
			what = shape(t)
		}
		p.once("alias", at.with("", n.Line), fmt.Sprintf("an alias (*%s) stands for %s; an alias may stand only for a single value, such as a URL", n.Value, what))
		return &yaml.Node{}
	}
	return t
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalar reads the value of key as a single value; see given.
func scalar(p *problems, l location, key string, n *yaml.Node) (given, bool) {
	line := n.Line
	n = resolve(p, l, n)
	switch {
	case n.Kind == 0 || isNull(n):
		return given{}, false
	case n.Kind == yaml.ScalarNode:
		return given{strings.TrimSpace(n.Value), line, true}, true
	case n.Kind == yaml.SequenceNode:
		p.bad(l.with(key, line), nil, "must be a single value, not a list")
	default:
		p.bad(l.with(key, line), nil, "must be a single value, not a mapping")
	}
	return given{line: line}, true
}

// scalarOf reads key of an entry, if the entry has it.
func scalarOf(p *problems, l location, key string, fields map[string]*yaml.Node) (given, bool) {
	if n := fields[key]; n != nil {
		return scalar(p, l, key, n)
	}
	return given{}, false
}

// fileEntry validates one entry of the clients list, given its keys.
func fileEntry(fields map[string]*yaml.Node, l location, env map[string]value, p *problems) *candidate {
	c := &candidate{loc: l}
	// The name comes first so that every later message can say which client.
	switch name, ok := scalarOf(p, l, "name", fields); {
	case !ok:
		p.bad(l.with("name", 0), nil, "is missing; every client in a file needs a unique name (1 to 64 characters from A-Z a-z 0-9 . _ -)")
	case name.shape && checkName(p, l.with("name", name.line), name.v):
		c.client.Name = name.v
		c.nameOK, c.nameLine = true, name.line
		c.loc.client = name.v
	}
	entry := map[string]given{}
	for _, key := range clientKeyList()[1:] {
		if g, ok := scalarOf(p, c.loc, key, fields); ok {
			entry[key] = g
		}
	}
	c.assemble(p, entry, env)
	return c
}
