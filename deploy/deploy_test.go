package deploy_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/clear-rotator/clear-rotator/internal/config"
	"github.com/clear-rotator/clear-rotator/internal/timing"
)

// update rewrites kubernetes/prometheusrule.yaml from prometheus/rules.yaml instead of comparing
// them: `go test ./deploy -update` after editing the rules.
var update = flag.Bool("update", false, "rewrite kubernetes/prometheusrule.yaml from prometheus/rules.yaml")

const (
	kubeDir     = "kubernetes"
	rulesFile   = "prometheus/rules.yaml"
	promRule    = "kubernetes/prometheusrule.yaml"
	runbook     = "../docs/runbook.md"
	operations  = "../docs/operations.md"
	runbookBase = "https://github.com/clear-rotator/clear-rotator/blob/main/docs/runbook.md#"
	opsPort     = 9090
	opsPortName = "metrics"
)

// object is one Kubernetes object, kept as generic YAML so that a field the test does not know
// about is not silently dropped by a struct.
type object = map[string]any

// readDocs parses every YAML document of a file.
func readDocs(t *testing.T, path string) []object {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []object
	for {
		var doc object
		err := dec.Decode(&doc)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

// get walks a path of map keys and list indexes (as ints) and fails the test when it is missing.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	cur := v
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %v", path, path[:i])
			}
			if cur, ok = m[k]; !ok {
				t.Fatalf("%v: missing", path[:i+1])
			}
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: no element %d", path[:i], k)
			}
			cur = l[k]
		}
	}
	return cur
}

// manifests returns every object of the kustomization's resources, by kind.
func manifests(t *testing.T) map[string][]object {
	t.Helper()
	kust := readDocs(t, filepath.Join(kubeDir, "kustomization.yaml"))
	if len(kust) != 1 {
		t.Fatalf("kustomization.yaml holds %d documents", len(kust))
	}
	var resources []string
	for _, r := range get(t, kust[0], "resources").([]any) {
		resources = append(resources, r.(string))
	}
	// Every manifest in the directory is a resource, so none is forgotten by `kubectl apply -k`.
	files, err := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml's resources", base)
		}
	}
	byKind := map[string][]object{}
	for _, r := range resources {
		for _, doc := range readDocs(t, filepath.Join(kubeDir, r)) {
			for _, field := range []string{"apiVersion", "kind"} {
				if s, _ := doc[field].(string); s == "" {
					t.Errorf("%s: an object without %s", r, field)
				}
			}
			if s, _ := get(t, doc, "metadata", "name").(string); s == "" {
				t.Errorf("%s: an object without metadata.name", r)
			}
			byKind[doc["kind"].(string)] = append(byKind[doc["kind"].(string)], doc)
		}
	}
	for _, kind := range []string{"Deployment", "ServiceAccount", "Service", "PrometheusRule"} {
		if len(byKind[kind]) != 1 {
			t.Fatalf("want exactly one %s, have %d", kind, len(byKind[kind]))
		}
	}
	return byKind
}

func TestKubernetesManifests(t *testing.T) {
	byKind := manifests(t)
	dep := byKind["Deployment"][0]
	pod := get(t, dep, "spec", "template", "spec")

	t.Run("labels and selectors", func(t *testing.T) {
		podLabels := get(t, dep, "spec", "template", "metadata", "labels").(map[string]any)
		matches := func(sel map[string]any) bool {
			for k, v := range sel {
				if podLabels[k] != v {
					return false
				}
			}
			return len(sel) > 0
		}
		if !matches(get(t, dep, "spec", "selector", "matchLabels").(map[string]any)) {
			t.Error("the Deployment's selector does not match its pod labels")
		}
		if !matches(get(t, byKind["Service"][0], "spec", "selector").(map[string]any)) {
			t.Error("the Service's selector does not match the pod labels")
		}
	})

	t.Run("service account", func(t *testing.T) {
		sa := byKind["ServiceAccount"][0]
		if got, want := get(t, pod, "serviceAccountName"), get(t, sa, "metadata", "name"); got != want {
			t.Errorf("serviceAccountName %v, the ServiceAccount is %v", got, want)
		}
		role, _ := get(t, sa, "metadata", "annotations", "eks.amazonaws.com/role-arn").(string)
		if !strings.HasPrefix(role, "arn:aws:iam::") {
			t.Errorf("IRSA annotation %q is not a role ARN placeholder", role)
		}
	})

	containers := get(t, pod, "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("want one container, have %d", len(containers))
	}
	c := containers[0]
	env := map[string]string{}
	for _, e := range get(t, c, "env").([]any) {
		name := get(t, e, "name").(string)
		value, _ := e.(map[string]any)["value"].(string)
		if _, dup := env[name]; dup {
			t.Errorf("env %s is set twice", name)
		}
		env[name] = value
	}

	t.Run("non-root and read-only", func(t *testing.T) {
		if get(t, pod, "securityContext", "runAsNonRoot") != true {
			t.Error("pod securityContext.runAsNonRoot is not true")
		}
		if uid, _ := get(t, pod, "securityContext", "runAsUser").(int); uid == 0 {
			t.Error("pod runs as UID 0")
		}
		if get(t, pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
			t.Error("pod seccompProfile is not RuntimeDefault")
		}
		sc := get(t, c, "securityContext")
		for _, want := range []struct {
			field string
			value any
		}{{"runAsNonRoot", true}, {"readOnlyRootFilesystem", true}, {"allowPrivilegeEscalation", false}} {
			if got := get(t, sc, want.field); got != want.value {
				t.Errorf("container securityContext.%s is %v, want %v", want.field, got, want.value)
			}
		}
		if drop := get(t, sc, "capabilities", "drop").([]any); !slices.Contains(drop, any("ALL")) {
			t.Errorf("capabilities.drop is %v, want ALL", drop)
		}
		if _, ok := get(t, c, "resources", "limits").(map[string]any)["memory"]; !ok {
			t.Error("no memory limit")
		}
	})

	t.Run("probes on the ops port", func(t *testing.T) {
		port := -1
		for _, p := range get(t, c, "ports").([]any) {
			if get(t, p, "name") == opsPortName {
				port = get(t, p, "containerPort").(int)
			}
		}
		if port != opsPort {
			t.Fatalf("container port %q is %d, want %d", opsPortName, port, opsPort)
		}
		// The rotator listens where ROTATOR_HTTP_ADDR says, default :9090.
		if addr, ok := env[config.EnvHTTPAddr]; ok && !strings.HasSuffix(addr, fmt.Sprintf(":%d", opsPort)) {
			t.Errorf("%s=%q does not listen on the probed port %d", config.EnvHTTPAddr, addr, opsPort)
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if got := get(t, c, probe, "httpGet", "path"); got != path {
				t.Errorf("%s path %v, want %s", probe, got, path)
			}
			if got := get(t, c, probe, "httpGet", "port"); got != opsPortName && got != opsPort {
				t.Errorf("%s port %v, want %s", probe, got, opsPortName)
			}
		}
		svcPort := get(t, byKind["Service"][0], "spec", "ports", 0)
		if got := get(t, svcPort, "targetPort"); got != opsPortName && got != opsPort {
			t.Errorf("Service targetPort %v, want %s", got, opsPortName)
		}
	})

	t.Run("termination grace", func(t *testing.T) {
		clearTimeout := config.DefaultClearTimeout
		if s, ok := env[config.EnvClearTimeout]; ok {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%s: %v", config.EnvClearTimeout, err)
			}
			clearTimeout = d
		}
		// The shutdown grace is set explicitly, so that the pod's grace does not silently depend
		// on the rotator's default.
		s, ok := env[config.EnvShutdownGrace]
		if !ok {
			t.Fatalf("%s is not set", config.EnvShutdownGrace)
		}
		grace, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("%s: %v", config.EnvShutdownGrace, err)
		}
		if min := timing.MinShutdownGrace(clearTimeout); grace < min {
			t.Errorf("%s=%v is shorter than a Clear request and the write of its answer (%v)", config.EnvShutdownGrace, grace, min)
		}
		pod := time.Duration(get(t, pod, "terminationGracePeriodSeconds").(int)) * time.Second
		if pod <= grace {
			t.Errorf("terminationGracePeriodSeconds %v is not longer than %s=%v: Kubernetes would kill a rotation in flight", pod, config.EnvShutdownGrace, grace)
		}
	})

	t.Run("configuration", func(t *testing.T) {
		for _, name := range []string{"AWS_REGION", config.EnvBaseURL, config.EnvClientSecretID, config.EnvTokenSecretID} {
			if env[name] == "" {
				t.Errorf("env %s is not set", name)
			}
		}
		// A client secret never goes into a manifest: the rotator reads it from Secrets Manager.
		if _, ok := env[config.EnvClientSecret]; ok {
			t.Errorf("the Deployment sets %s; use %s", config.EnvClientSecret, config.EnvClientSecretID)
		}
	})
}

// rules is the shape of a Prometheus rule file, and of a PrometheusRule's spec.
type rules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// promRuleHeader is the part of kubernetes/prometheusrule.yaml around the rules.
const promRuleHeader = `# GENERATED from deploy/prometheus/rules.yaml by ` + "`go test ./deploy -update`" + `; edit that file.
# The same alerting rules for the Prometheus Operator. Its ruleSelector may need a label here (for
# example release: kube-prometheus-stack) before it loads them.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: clear-rotator
  labels:
    app.kubernetes.io/name: clear-rotator
spec:
`

// wrapRules returns the PrometheusRule that holds the rule file's groups: its non-comment lines,
// indented under spec.
func wrapRules(ruleFile []byte) []byte {
	var b bytes.Buffer
	b.WriteString(promRuleHeader)
	started := false
	for line := range strings.Lines(string(ruleFile)) {
		// The file's leading comment describes the file, not the PrometheusRule.
		if !started && (strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "") {
			continue
		}
		started = true
		if strings.TrimSpace(line) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("  " + line)
	}
	return b.Bytes()
}

func TestPrometheusRuleHoldsTheRules(t *testing.T) {
	ruleFile, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := wrapRules(ruleFile)
	if *update {
		if err := os.WriteFile(promRule, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(promRule)
	if err != nil {
		t.Fatal(err)
	}
	// Compare the parsed rules first, for a readable message, then the bytes.
	var fromFile rules
	if err := yaml.Unmarshal(ruleFile, &fromFile); err != nil {
		t.Fatal(err)
	}
	var wrapped struct {
		Spec rules `yaml:"spec"`
	}
	if err := yaml.Unmarshal(got, &wrapped); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, wrapped.Spec) {
		t.Fatalf("%s does not hold the rules of %s; run `go test ./deploy -update`", promRule, rulesFile)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what %s generates; run `go test ./deploy -update`", promRule, rulesFile)
	}
}

// slug is GitHub's anchor for a Markdown heading.
func slug(heading string) string {
	s := strings.ToLower(strings.TrimSpace(heading))
	s = regexp.MustCompile(`[^\p{L}\p{N} _-]`).ReplaceAllString(s, "")
	return strings.ReplaceAll(s, " ", "-")
}

func TestAlertRules(t *testing.T) {
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf rules
	if err := yaml.Unmarshal(data, &rf); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.Lines(string(md)) {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[slug(strings.TrimLeft(h, "#"))] = true
		}
	}
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, runbookBase)
			if !ok || anchor != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook_url %q, want %s%s", r.Alert, url, runbookBase, strings.ToLower(r.Alert))
			} else if !anchors[anchor] {
				t.Errorf("%s: docs/runbook.md has no heading for #%s", r.Alert, anchor)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no alerts")
	}
}

// The image's version comes from the build: `make image` passes --build-arg VERSION, and the
// Dockerfile hands it to `make static`. No Docker engine runs where the tests run, so this checks
// the files rather than building the image.
func TestImageVersion(t *testing.T) {
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// In the build stage (from its FROM to the next), ARG VERSION must come before the make
	// static line that uses it; an ARG before the first FROM is not visible in a stage.
	var stage []string
	inBuild := false
	for line := range strings.Lines(string(dockerfile)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			inBuild = strings.HasSuffix(strings.ToLower(line), " as build")
			continue
		}
		if inBuild {
			stage = append(stage, line)
		}
	}
	argAt := slices.IndexFunc(stage, func(l string) bool { return regexp.MustCompile(`^ARG\s+VERSION(=|\s|$)`).MatchString(l) })
	makeAt := slices.IndexFunc(stage, func(l string) bool {
		return regexp.MustCompile(`^RUN\s.*make\s+static\b.*VERSION=("?)\$\{?VERSION\b`).MatchString(l)
	})
	if argAt < 0 || makeAt < 0 || argAt > makeAt {
		t.Errorf("the Dockerfile's build stage must declare ARG VERSION and then pass it to `make static VERSION=$VERSION` (ARG at %d, make at %d)", argAt, makeAt)
	}

	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^image:[^\n]*\n(\t[^\n]*\n)*\t[^\n]*docker build[^\n]*--build-arg VERSION=\$\(VERSION\)`).Match(makefile) {
		t.Error("`make image` does not pass --build-arg VERSION=$(VERSION) to docker build")
	}
	for _, doc := range []string{"../README.md", operations} {
		md, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(md)) {
			if strings.Contains(line, "docker build") && !strings.Contains(line, "--build-arg VERSION=") {
				t.Errorf("%s builds the image without a version: %s", doc, strings.TrimSpace(line))
			}
		}
	}
}
