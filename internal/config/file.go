package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// strictFile and fileClient describe the YAML file for the strict decoding
// pass, whose only job is to let yaml.v3 (with KnownFields) report unknown
// keys, duplicate keys and entries of the wrong shape. Every value is kept as
// a yaml.Node so that this pass never fails on a value: values are checked by
// this package, which gives better messages and never quotes a secret.
type strictFile struct {
	Clients []fileClient `yaml:"clients"`
}

type fileClient struct {
	Name           yaml.Node `yaml:"name"`
	BaseURL        yaml.Node `yaml:"base_url"`
	ClientSecret   yaml.Node `yaml:"client_secret"`
	ClientSecretID yaml.Node `yaml:"client_secret_id"`
	TokenSecretID  yaml.Node `yaml:"token_secret_id"`
	DailyLimit     yaml.Node `yaml:"daily_limit"`
	RenewBefore    yaml.Node `yaml:"renew_before"`
	MaxAge         yaml.Node `yaml:"max_age"`
}

const clientKeys = "name, base_url, client_secret, client_secret_id, token_secret_id, daily_limit, renew_before, max_age"

// fileClients validates the YAML file and returns its clients, with the
// environment's settings filling in what entries omit.
func fileClients(f *fileInput, env *envDefaults, p *problems) (cands []*candidate) {
	at := location{source: f.source}
	if f.readErr != nil {
		p.bad(at.with(EnvConfig, 0), f.readErr, "names a file that cannot be read: %s", f.readErr)
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
	strictCheck(f.data, at, p)

	doc := resolve(root.Content[0])
	if doc.Kind != yaml.MappingNode && !isNull(doc) {
		return nil // the strict pass has said what the top level should be
	}
	var top struct {
		Clients yaml.Node `yaml:"clients"`
	}
	if err := root.Decode(&top); err != nil {
		return nil // reported by the strict pass
	}
	list := resolve(&top.Clients)
	switch {
	case list.Kind == 0 || isNull(list):
		p.add(at.with("clients", list.Line), ErrNoClients, "the file lists no clients; list at least one under a top-level clients: key")
		return nil
	case list.Kind != yaml.SequenceNode:
		return nil // reported by the strict pass
	case len(list.Content) == 0:
		p.add(at.with("clients", list.Line), ErrNoClients, "clients is empty; list at least one client")
		return nil
	}
	for i, item := range list.Content {
		l := at
		l.line, l.entry = item.Line, i+1
		n := resolve(item)
		if isNull(n) {
			p.add(l, nil, "the entry is empty; each client needs at least a name (keys: "+clientKeys+")")
			continue
		}
		var fc fileClient
		if n.Kind != yaml.MappingNode || n.Decode(&fc) != nil {
			continue // wrong shape or duplicate keys: reported by the strict pass
		}
		cands = append(cands, fileEntry(&fc, l, env, p))
	}
	return cands
}

// decodeRoot parses the file into a node tree, refusing empty files and
// files with several documents: a second document would otherwise be
// silently ignored, and with it whatever clients the operator put there.
func decodeRoot(data []byte, at location, p *problems) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(at, nil, "the file is empty; it needs a top-level clients: list")
		} else {
			line, msg := yamlLine(err.Error())
			p.add(location{source: at.source, line: line}, err, "the file is not valid YAML: "+msg)
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

// strictCheck runs the KnownFields pass and translates its findings.
func strictCheck(data []byte, at location, p *problems) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sf strictFile
	err := dec.Decode(&sf)
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		for _, m := range te.Errors {
			line, msg := translateTypeError(m)
			p.add(location{source: at.source, line: line}, nil, msg)
		}
	case err != nil:
		line, msg := yamlLine(err.Error())
		p.add(location{source: at.source, line: line}, err, "the file cannot be decoded: "+msg)
	}
}

var (
	lineRE        = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownRE     = regexp.MustCompile(`^field (.*) not found in type (\S+)$`)
	alreadySetRE  = regexp.MustCompile(`^field (.*) already set in type \S+$`)
	duplicateRE   = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
	cannotUnmarRE = regexp.MustCompile("^cannot unmarshal (!!?[^ ]*)(?: `.*`)? into (\\S+)$")
)

// yamlLine splits yaml.v3's "yaml: line N: problem" into its parts.
func yamlLine(msg string) (int, string) {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// translateTypeError rewrites one of yaml.v3's TypeError lines into the
// operator's terms. yaml.v3 speaks of Go types and quotes a few characters of
// the offending value; the rewrite names the YAML shape instead, so that no
// part of a misplaced secret is repeated.
func translateTypeError(msg string) (int, string) {
	line, rest := yamlLine(msg)
	if m := unknownRE.FindStringSubmatch(rest); m != nil {
		if strings.HasSuffix(m[2], "fileClient") {
			return line, fmt.Sprintf("unknown key %s in a client entry; allowed keys: %s", quote(m[1]), clientKeys)
		}
		return line, fmt.Sprintf("unknown top-level key %s; the only allowed key is clients", quote(m[1]))
	}
	if m := alreadySetRE.FindStringSubmatch(rest); m != nil {
		return line, fmt.Sprintf("key %s is given more than once", quote(m[1]))
	}
	if m := duplicateRE.FindStringSubmatch(rest); m != nil {
		return line, fmt.Sprintf("key %s is given twice (first at line %s)", m[1], m[2])
	}
	if m := cannotUnmarRE.FindStringSubmatch(rest); m != nil {
		return line, fmt.Sprintf("expected %s, found %s", goTypeShape(m[2]), tagShape(m[1]))
	}
	return line, rest
}

func goTypeShape(t string) string {
	switch {
	case strings.HasSuffix(t, "strictFile"):
		return "a mapping with a clients: key at the top level"
	case strings.HasSuffix(t, "[]config.fileClient"):
		return "a list of clients under clients:"
	case strings.HasSuffix(t, "fileClient"):
		return "a client entry (a mapping with keys " + clientKeys + ")"
	case t == "string":
		return "a plain key"
	}
	return t
}

func tagShape(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "nothing"
	}
	return "a value tagged " + tag
}

// resolve follows aliases (*name) to the node they stand for. The depth
// bound is belt and braces: yaml.v3 already refuses recursive anchors.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 32 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// rawField is one key of an entry before validation. A null value ("key:" or
// "key: ~") counts as absent, so that the environment's default applies.
type rawField struct {
	v       string
	line    int
	present bool
	ok      bool // false when its shape was wrong, which is already reported
}

func scalar(p *problems, l location, key string, n *yaml.Node) rawField {
	line := n.Line
	n = resolve(n)
	switch {
	case n.Kind == 0 || isNull(n):
		return rawField{}
	case n.Kind == yaml.ScalarNode:
		return rawField{v: strings.TrimSpace(n.Value), line: line, present: true, ok: true}
	case n.Kind == yaml.SequenceNode:
		p.bad(l.with(key, line), nil, "must be a single value, not a list")
	case n.Kind == yaml.MappingNode:
		p.bad(l.with(key, line), nil, "must be a single value, not a mapping")
	default:
		p.bad(l.with(key, line), nil, "must be a single value")
	}
	return rawField{line: line, present: true}
}

// fileEntry validates one entry of the clients list.
func fileEntry(fc *fileClient, l location, env *envDefaults, p *problems) *candidate {
	c := &candidate{loc: l}
	raw := func(key string, n *yaml.Node) rawField { return scalar(p, c.loc, key, n) }

	// The name comes first so that every later message can say which client.
	switch name := raw("name", &fc.Name); {
	case !name.present:
		p.bad(l.with("name", 0), nil, "is missing; every client in a file needs a unique name (1 to 64 characters from A-Z a-z 0-9 . _ -)")
	case name.ok && checkName(p, l.with("name", name.line), name.v):
		c.client.Name = name.v
		c.nameOK, c.nameLine = true, name.line
		c.loc.client = name.v
	}
	l = c.loc
	inherited := func(key, env string) location { return l.with(key+" (from "+env+")", 0) }

	switch r := raw("base_url", &fc.BaseURL); {
	case r.present:
		if r.ok {
			c.client.BaseURL, _ = checkBaseURL(p, l.with("base_url", r.line), r.v)
		}
	case env.baseURL.set:
		c.client.BaseURL = env.baseURL.v // empty when invalid, which is already reported
	default:
		p.bad(l.with("base_url", 0), nil, "is missing; set it in the entry, or set %s as a default for all entries", EnvBaseURL)
	}

	cs, csid := raw("client_secret", &fc.ClientSecret), raw("client_secret_id", &fc.ClientSecretID)
	switch {
	case cs.present && csid.present:
		p.secret(cs.v)
		p.bad(l.with("client_secret", cs.line), nil, "and client_secret_id are both set; set exactly one")
	case cs.present:
		if !cs.ok {
			break
		}
		sl := l.with("client_secret", cs.line)
		if s, ok := checkClientSecret(p, sl, cs.v); ok {
			c.client.ClientSecret, c.literal, c.literalLoc = s, cs.v, sl
		}
	case csid.present:
		if !csid.ok {
			break
		}
		il := l.with("client_secret_id", csid.line)
		if ref, ok := checkSecretID(p, il, csid.v, false); ok {
			c.client.ClientSecretID = ref.raw
			c.secretUse = &idUse{ref: ref, loc: il, owner: c}
		}
	case env.secret.set:
		switch {
		case !env.secret.ok: // already reported
		case !env.literal.IsZero():
			c.client.ClientSecret = env.literal
			c.literal, c.literalLoc = env.literal.Reveal(), inherited("client_secret", EnvClientSecret)
		default:
			c.client.ClientSecretID = env.secretID.raw
			c.secretUse = &idUse{ref: env.secretID, loc: inherited("client_secret_id", EnvClientSecretID), owner: c}
		}
	default:
		p.add(l.with("client_secret", 0), nil, "needs a client_secret_id (the Secrets Manager secret holding the Clear client secret) or a client_secret; set one in the entry, or "+
			EnvClientSecretID+" or "+EnvClientSecret+" as a default for all entries")
	}

	switch r := raw("token_secret_id", &fc.TokenSecretID); {
	case r.present:
		if !r.ok {
			break
		}
		tl := l.with("token_secret_id", r.line)
		if ref, ok := checkSecretID(p, tl, r.v, true); ok {
			c.client.TokenSecretID = ref.raw
			c.tokenUse = &idUse{ref: ref, loc: tl, owner: c, token: true}
		}
	case env.token.set:
		if env.token.ok {
			c.client.TokenSecretID = env.token.v.raw
			c.tokenUse = &idUse{ref: env.token.v, loc: inherited("token_secret_id", EnvTokenSecretID), owner: c, token: true}
		}
	default:
		p.bad(l.with("token_secret_id", 0), nil, "is missing; set it in the entry to the Secrets Manager name or ARN where this client's token is kept")
	}

	c.client.DailyLimit = DefaultDailyLimit
	switch r := raw("daily_limit", &fc.DailyLimit); {
	case r.present:
		if r.ok {
			c.client.DailyLimit, _ = checkDailyLimit(p, l.with("daily_limit", r.line), r.v)
		}
	case env.dailyLimit.ok:
		c.client.DailyLimit = env.dailyLimit.v
	}
	switch r := raw("renew_before", &fc.RenewBefore); {
	case r.present:
		if r.ok {
			c.client.RenewBefore, _ = checkDuration(p, l.with("renew_before", r.line), r.v, 0, 0)
		}
	default:
		c.client.RenewBefore = env.renewBefore.v
	}
	switch r := raw("max_age", &fc.MaxAge); {
	case r.present:
		if r.ok {
			c.client.MaxAge, _ = checkDuration(p, l.with("max_age", r.line), r.v, 0, 0)
		}
	default:
		c.client.MaxAge = env.maxAge.v
	}
	return c
}
