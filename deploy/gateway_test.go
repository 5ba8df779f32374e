package deploy_test

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/clear-rotator/clear-rotator/internal/config"
)

// The gateway's settings (issue 17). A gateway that listens beyond loopback without a key is
// refused at start-up, so a manifest that does so would crash-loop.
const (
	envGatewayAddr  = config.EnvGatewayAddr
	envGatewayKeyID = config.EnvGatewayKeyID
	envGatewayKey   = config.EnvGatewayKey
	gatewayDir      = "kubernetes/gateway"
	sidecarFile     = "kubernetes/gateway-sidecar/erp.yaml"
	gatewayPortName = "gateway"
)

// envOf returns a container's environment by name (values only; valueFrom counts as set, "").
func envOf(t *testing.T, c any) map[string]string {
	t.Helper()
	env := map[string]string{}
	list, _ := c.(map[string]any)["env"].([]any)
	for _, e := range list {
		name := get(t, e, "name").(string)
		value, _ := e.(map[string]any)["value"].(string)
		if _, dup := env[name]; dup {
			t.Errorf("env %s is set twice", name)
		}
		env[name] = value
	}
	return env
}

// byName returns the element of a list of maps whose name is name, or nil.
func byName(list []any, name string) map[string]any {
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	return nil
}

// mergeByName is a strategic merge of a list keyed by name (containers' env and ports): patch's
// entries replace or join base's.
func mergeByName(base, patch []any) []any {
	out := slices.Clone(base)
	for _, p := range patch {
		name := p.(map[string]any)["name"]
		i := slices.IndexFunc(out, func(e any) bool { return e.(map[string]any)["name"] == name })
		if i >= 0 {
			out[i] = p
		} else {
			out = append(out, p)
		}
	}
	return out
}

// gatewayPort checks a gateway address against the container's port of that name and returns the
// address's host, for the key rule.
func gatewayPort(t *testing.T, addr string, c any) (host string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s=%q: %v", envGatewayAddr, addr, err)
	}
	p := byName(get(t, c, "ports").([]any), gatewayPortName)
	if p == nil {
		t.Fatalf("the container has no port named %q", gatewayPortName)
	}
	if strconv.Itoa(p["containerPort"].(int)) != port {
		t.Errorf("%s=%q, but the port named %s is %v", envGatewayAddr, addr, gatewayPortName, p["containerPort"])
	}
	return host
}

// needsKey says whether a gateway on host must have an inbound key: anything but loopback.
func needsKey(host string) bool {
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// gatewayConnBytes is what one open connection may cost the gateway, rounded up: the larger of an
// idle keep-alive connection's (BENCHMARKS.md, section 9: 11 kB) and one whose caller holds back
// the end of a head of the largest size, which anyone who reaches the port can do before any key
// is checked (internal/gateway's TestAHeadInProgressHoldsLittle: about 33 kB); gatewayBaseBytes is
// the process without connections, with room for the daemon's own work.
const (
	gatewayConnBytes = 36 << 10
	gatewayBaseBytes = 48 << 20
)

// memoryBytes parses a Kubernetes memory quantity in Mi or Gi.
func memoryBytes(t *testing.T, q string) int64 {
	t.Helper()
	for suffix, unit := range map[string]int64{"Mi": 1 << 20, "Gi": 1 << 30} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("memory %q: %v", q, err)
			}
			return v * unit
		}
	}
	t.Fatalf("memory %q: use Mi or Gi", q)
	return 0
}

// checkConnMemory fails when the container's memory limit cannot hold the gateway's connection
// bound: at that many connections the pod would be killed rather than refuse connections.
func checkConnMemory(t *testing.T, env map[string]string, limit string) {
	t.Helper()
	conns := int64(config.DefaultGatewayMaxConns)
	if v, ok := env[config.EnvGatewayMaxConns]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", config.EnvGatewayMaxConns, v, err)
		}
		conns = n
	}
	if need := gatewayBaseBytes + conns*gatewayConnBytes; memoryBytes(t, limit) < need {
		t.Errorf("memory limit %s cannot hold %d connections (%s): about %d MiB needed; lower %s or raise the limit",
			limit, conns, config.EnvGatewayMaxConns, need>>20, config.EnvGatewayMaxConns)
	}
}

// matchesLabels reports whether every label of sel is among labels (and sel is not empty).
func matchesLabels(sel, labels map[string]any) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// TestGatewayOverlay checks deploy/kubernetes/gateway: the daemon of deploy/kubernetes with its
// embedded gateway, a Service for the ERPs and a NetworkPolicy that admits only them.
func TestGatewayOverlay(t *testing.T) {
	kust := readDocs(t, filepath.Join(gatewayDir, "kustomization.yaml"))[0]
	var listed []string
	for _, r := range get(t, kust, "resources").([]any) {
		listed = append(listed, r.(string))
	}
	if !slices.Contains(listed, "../") && !slices.Contains(listed, "..") {
		t.Fatalf("the overlay's resources %v do not include the rotator's kustomization (../)", listed)
	}
	var patchFile string
	for _, p := range get(t, kust, "patches").([]any) {
		patchFile = get(t, p, "path").(string)
		listed = append(listed, patchFile)
	}
	files, _ := filepath.Glob(filepath.Join(gatewayDir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(listed, b) {
			t.Errorf("%s is not listed in the overlay's kustomization.yaml", b)
		}
	}

	byKind := manifests(t)
	for _, r := range listed {
		if r == "../" || r == ".." || r == patchFile {
			continue
		}
		for _, doc := range readDocs(t, filepath.Join(gatewayDir, r)) {
			byKind[doc["kind"].(string)] = append(byKind[doc["kind"].(string)], doc)
		}
	}

	// Apply the patch to the base Deployment's container, as kustomize's strategic merge does.
	dep := byKind["Deployment"][0]
	podLabels := get(t, dep, "spec", "template", "metadata", "labels").(map[string]any)
	patch := readDocs(t, filepath.Join(gatewayDir, patchFile))[0]
	if get(t, patch, "metadata", "name") != get(t, dep, "metadata", "name") {
		t.Fatalf("the patch names Deployment %v, the rotator's is %v", get(t, patch, "metadata", "name"), get(t, dep, "metadata", "name"))
	}
	pc := get(t, patch, "spec", "template", "spec", "containers", 0).(map[string]any)
	base := byName(get(t, dep, "spec", "template", "spec", "containers").([]any), pc["name"].(string))
	if base == nil {
		t.Fatalf("the patch's container %v is not the rotator's", pc["name"])
	}
	c := map[string]any{
		"ports": mergeByName(base["ports"].([]any), pc["ports"].([]any)),
		"env":   mergeByName(base["env"].([]any), pc["env"].([]any)),
	}
	env := envOf(t, c)

	t.Run("the gateway listens with a key", func(t *testing.T) {
		addr, ok := env[envGatewayAddr]
		if !ok {
			t.Fatalf("the overlay does not set %s", envGatewayAddr)
		}
		host := gatewayPort(t, addr, c)
		if _, ok := env[envGatewayKey]; ok {
			t.Errorf("%s puts the key in the manifest; use %s", envGatewayKey, envGatewayKeyID)
		}
		if needsKey(host) && env[envGatewayKeyID] == "" {
			t.Errorf("%s=%q listens beyond loopback without %s: the rotator refuses to start", envGatewayAddr, addr, envGatewayKeyID)
		}
		limits, _ := pc["resources"].(map[string]any)["limits"].(map[string]any)
		if limits == nil {
			limits = get(t, base, "resources", "limits").(map[string]any)
		}
		checkConnMemory(t, env, limits["memory"].(string))
		if addr := env[config.EnvHTTPAddr]; strings.HasSuffix(addr, ":"+strings.Split(env[envGatewayAddr], ":")[1]) {
			t.Errorf("the gateway and the ops listener share a port (%s)", addr)
		}
	})

	t.Run("service", func(t *testing.T) {
		var svc map[string]any
		for _, s := range byKind["Service"] {
			for _, p := range get(t, s, "spec", "ports").([]any) {
				if tp := get(t, p, "targetPort"); tp == gatewayPortName {
					svc = s
				}
			}
		}
		if svc == nil {
			t.Fatalf("no Service targets the port named %s", gatewayPortName)
		}
		if !matchesLabels(get(t, svc, "spec", "selector").(map[string]any), podLabels) {
			t.Error("the gateway's Service does not select the rotator's pods")
		}
		if svc["spec"].(map[string]any)["publishNotReadyAddresses"] == true {
			t.Error("the gateway's Service sends ERP calls to replicas that are not ready")
		}
	})

	t.Run("network policy admits only the ERP", func(t *testing.T) {
		if len(byKind["NetworkPolicy"]) != 1 {
			t.Fatalf("want one NetworkPolicy, have %d", len(byKind["NetworkPolicy"]))
		}
		np := byKind["NetworkPolicy"][0]
		if !matchesLabels(get(t, np, "spec", "podSelector", "matchLabels").(map[string]any), podLabels) {
			t.Error("the NetworkPolicy does not select the rotator's pods")
		}
		if types := get(t, np, "spec", "policyTypes").([]any); !slices.Contains(types, any("Ingress")) {
			t.Errorf("policyTypes %v do not restrict ingress", types)
		}
		admitted := map[any]bool{}
		for _, rule := range get(t, np, "spec", "ingress").([]any) {
			from, _ := rule.(map[string]any)["from"].([]any)
			ports, _ := rule.(map[string]any)["ports"].([]any)
			if len(from) == 0 || len(ports) == 0 {
				t.Errorf("an ingress rule admits every source or every port: %v", rule)
				continue
			}
			for _, p := range ports {
				port := get(t, p, "port")
				admitted[port] = true
				if port != gatewayPortName && port != 8480 {
					continue
				}
				// The gateway's port: only pods that carry a label, never a whole namespace or
				// an address block.
				for _, f := range from {
					sel, _ := f.(map[string]any)["podSelector"].(map[string]any)
					labels, _ := sel["matchLabels"].(map[string]any)
					if len(labels) == 0 {
						t.Errorf("the gateway's port is admitted from %v, not from labelled ERP pods", f)
					}
				}
			}
		}
		if !admitted[gatewayPortName] {
			t.Error("the NetworkPolicy does not admit the ERP to the gateway's port")
		}
		if !admitted[opsPortName] && !admitted[opsPort] {
			t.Error("the NetworkPolicy shuts Prometheus out of the metrics port")
		}
	})
}

// TestGatewaySidecar checks the sidecar example: an ERP whose gateway runs beside it on loopback,
// with read rights only.
func TestGatewaySidecar(t *testing.T) {
	docs := readDocs(t, sidecarFile)
	byKind := map[string][]object{}
	for _, d := range docs {
		byKind[d["kind"].(string)] = append(byKind[d["kind"].(string)], d)
	}
	if len(byKind["Deployment"]) != 1 || len(byKind["ServiceAccount"]) != 1 {
		t.Fatalf("want a Deployment and a ServiceAccount, have %v", byKind)
	}
	pod := get(t, byKind["Deployment"][0], "spec", "template", "spec")
	if get(t, pod, "serviceAccountName") != get(t, byKind["ServiceAccount"][0], "metadata", "name") {
		t.Error("the ERP's pod does not use the example's ServiceAccount")
	}
	containers := get(t, pod, "containers").([]any)
	var gw, erp any
	for _, c := range containers {
		args, _ := c.(map[string]any)["args"].([]any)
		if slices.Equal(args, []any{"gateway"}) {
			gw = c
		} else {
			erp = c
		}
	}
	if gw == nil || erp == nil {
		t.Fatal("want an ERP container and a `rotator gateway` container")
	}
	env := envOf(t, gw)
	for _, name := range []string{"AWS_REGION", config.EnvBaseURL, config.EnvTokenSecretID, envGatewayAddr} {
		if env[name] == "" {
			t.Errorf("the sidecar's %s is not set", name)
		}
	}
	// Read rights only: with a client secret the gateway could ask Clear for tokens.
	for _, name := range []string{config.EnvClientSecret, config.EnvClientSecretID, config.EnvClientSecretID + "_2", envGatewayKey} {
		if _, ok := env[name]; ok {
			t.Errorf("the sidecar sets %s", name)
		}
	}
	host, _, err := net.SplitHostPort(env[envGatewayAddr])
	if err != nil {
		t.Fatalf("%s: %v", envGatewayAddr, err)
	}
	if needsKey(host) && env[envGatewayKeyID] == "" {
		t.Errorf("the sidecar listens on %s without a key", env[envGatewayAddr])
	}
	if got, want := envOf(t, erp)[config.EnvBaseURL], "http://"+env[envGatewayAddr]; got != want {
		t.Errorf("the ERP's %s is %q, want the sidecar %q", config.EnvBaseURL, got, want)
	}
	checkConnMemory(t, env, get(t, gw, "resources", "limits", "memory").(string))
	sc := get(t, gw, "securityContext")
	if get(t, sc, "readOnlyRootFilesystem") != true || get(t, sc, "allowPrivilegeEscalation") != false || get(t, sc, "runAsNonRoot") != true {
		t.Error("the sidecar is not a non-root, read-only container without privilege escalation")
	}
	if _, ok := get(t, gw, "resources", "limits").(map[string]any)["memory"]; !ok {
		t.Error("the sidecar has no memory limit")
	}
}

// TestGatewaySidecarProbes checks that the sidecar's probes reach its ops listener.
func TestGatewaySidecarProbes(t *testing.T) {
	var gw any
	for _, d := range readDocs(t, sidecarFile) {
		if d["kind"] != "Deployment" {
			continue
		}
		for _, c := range get(t, d, "spec", "template", "spec", "containers").([]any) {
			if args, _ := c.(map[string]any)["args"].([]any); slices.Equal(args, []any{"gateway"}) {
				gw = c
			}
		}
	}
	if gw == nil {
		t.Fatal("no gateway container")
	}
	addr, ok := envOf(t, gw)[config.EnvHTTPAddr]
	if !ok || addr == "" {
		t.Fatalf("the sidecar sets no %s: it would take the rotator's default :9090, which the ERP may use", config.EnvHTTPAddr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if !needsKey(host) && host != "" {
		t.Errorf("%s=%q: the kubelet's probes cannot reach loopback", config.EnvHTTPAddr, addr)
	}
	named := map[string]string{}
	for _, p := range get(t, gw, "ports").([]any) {
		named[get(t, p, "name").(string)] = strconv.Itoa(get(t, p, "containerPort").(int))
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if got := get(t, gw, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %v, want %s", probe, got, path)
		}
		p := get(t, gw, probe, "httpGet", "port")
		if name, ok := p.(string); ok {
			p = named[name]
		} else {
			p = strconv.Itoa(p.(int))
		}
		if p != port {
			t.Errorf("%s probes port %v; the ops listener is on %s", probe, p, port)
		}
	}
}
