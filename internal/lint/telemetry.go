package lint

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// telemetry checks the PromQL of alerting rules and dashboards (PAL-3001,
// PAL-3002) and mesh configuration that istiod never reads (PAL-3010).
// Rules and dashboards are found in ConfigMaps (data keys ending in .yml,
// .yaml, .rules or .json), in PrometheusRule objects and in standalone rule
// files.
func (l *linter) telemetry() {
	var units []promUnit
	for i := range l.raw {
		d := &l.raw[i]
		switch d.kindOf() {
		case "ConfigMap":
			l.checkMeshConfigMap(d)
			units = append(units, configMapUnits(d)...)
		case "PrometheusRule":
			units = append(units, promUnit{doc: d, root: field(d.root, "spec"), lineOf: identityLine, object: "PrometheusRule " + d.objectName()})
		case "":
			if field(d.root, "groups") != nil || field(d.root, "panels") != nil || field(d.root, "dashboard") != nil {
				units = append(units, promUnit{doc: d, root: d.root, lineOf: identityLine})
			}
		}
	}
	// Recording rules define names that other rules may query.
	recorded := map[string]bool{}
	for _, u := range units {
		for _, r := range ruleNodes(u.root) {
			if name := scalar(r, "record"); name != "" {
				recorded[name] = true
			}
		}
	}
	for _, u := range units {
		rules := ruleNodes(u.root)
		if len(rules) > 0 {
			for _, r := range rules {
				what := "recording rule " + scalar(r, "record")
				if a := scalar(r, "alert"); a != "" {
					what = "alert " + a
				}
				l.checkExpr(u, field(r, "expr"), what, "PAL-3001", recorded)
			}
			continue
		}
		for _, e := range exprNodes(u.root) {
			l.checkExpr(u, e, "dashboard query", "PAL-3002", recorded)
		}
	}
}

// promUnit is a YAML tree holding rules or dashboards: a document, or a
// ConfigMap value parsed on its own, with how its lines map to the file.
type promUnit struct {
	doc    *rawDoc
	root   *yaml.Node
	lineOf func(*yaml.Node) int
	object string
	key    string // the ConfigMap data key
}

func identityLine(n *yaml.Node) int { return n.Line }

// configMapUnits parses the data values of a ConfigMap that look like rule
// files or dashboards.
func configMapUnits(d *rawDoc) []promUnit {
	var out []promUnit
	data := field(d.root, "data")
	if data == nil || data.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(data.Content); i += 2 {
		key, val := data.Content[i].Value, deref(data.Content[i+1])
		lower := strings.ToLower(key)
		if val == nil || val.Kind != yaml.ScalarNode {
			continue
		}
		if !strings.HasSuffix(lower, ".yml") && !strings.HasSuffix(lower, ".yaml") && !strings.HasSuffix(lower, ".rules") && !strings.HasSuffix(lower, ".json") {
			continue
		}
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(val.Value), &n); err != nil {
			continue
		}
		root := deref(&n)
		if root == nil {
			continue
		}
		// A block scalar's text starts on the line after its indicator;
		// other styles cannot be mapped line by line.
		base := val.Line
		block := val.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
		lineOf := func(n *yaml.Node) int {
			if block {
				return base + n.Line
			}
			return base
		}
		out = append(out, promUnit{doc: d, root: root, lineOf: lineOf, object: "ConfigMap " + d.objectName(), key: key})
	}
	return out
}

// ruleNodes returns the rules of a rule file: groups[].rules[].
func ruleNodes(root *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	groups := field(root, "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return nil
	}
	for _, g := range groups.Content {
		rules := field(deref(g), "rules")
		if rules == nil || rules.Kind != yaml.SequenceNode {
			continue
		}
		for _, r := range rules.Content {
			if r = deref(r); r != nil && r.Kind == yaml.MappingNode {
				out = append(out, r)
			}
		}
	}
	return out
}

// exprNodes finds every "expr" string in a tree (Grafana panel targets).
func exprNodes(n *yaml.Node) []*yaml.Node {
	var out []*yaml.Node
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		n = deref(n)
		if n == nil {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				v := deref(n.Content[i+1])
				if n.Content[i].Value == "expr" && v != nil && v.Kind == yaml.ScalarNode {
					out = append(out, v)
					continue
				}
				walk(v)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		}
	}
	walk(n)
	return out
}

// checkExpr reports the unknown metric names of one expression.
func (l *linter) checkExpr(u promUnit, expr *yaml.Node, what, id string, recorded map[string]bool) {
	if expr == nil || expr.Kind != yaml.ScalarNode {
		return
	}
	seen := map[string]bool{}
	for _, m := range metricNames(expr.Value) {
		if seen[m.name] || recorded[m.name] || strings.Contains(m.name, ":") {
			continue
		}
		seen[m.name] = true
		known, ours := knownMetric(m.name)
		if known || !ours {
			continue
		}
		line := u.lineOf(expr)
		if expr.Style&yaml.LiteralStyle != 0 {
			line += 1 + strings.Count(expr.Value[:m.offset], "\n")
		}
		where := ""
		if u.key != "" {
			where = fmt.Sprintf(" (data key %s)", u.key)
		}
		object := u.object
		s := suggestMetric(m.name)
		effect := "the alert never fires"
		if id == "PAL-3002" {
			effect = "the panel stays empty"
		} else if strings.HasPrefix(what, "recording") {
			effect = "the recorded series is never written"
		}
		l.add(id, u.doc.source(line), object,
			fmt.Sprintf("%s%s queries %s, which no Istio, Cilium, Hubble or Palisade component exports: %s", what, where, m.name, effect),
			"Prometheus returns an empty result for a metric nobody exports, without an error, so an expression over it is never true. "+s.why,
			s.fix)
	}
}

// suggestion is how to replace an unknown metric.
type suggestion struct{ why, fix string }

// misnamed are names that circulate in blog posts and generated docs but
// that no component exports, with what to use instead.
var misnamed = map[string]suggestion{
	"cilium_policy_verdict_total": {
		"Cilium's agent has no per-verdict policy counter (its Policy metrics are policy, policy_change_total, policy_max_revision, ...); verdicts are counted by Hubble as hubble_policy_verdicts_total{direction, match, action}, with action in lower case (\"dropped\", \"forwarded\").",
		"Use hubble_policy_verdicts_total{action=\"dropped\"} (enable the Hubble metric \"policy\" in hubble.metrics.enabled), or cilium_drop_count_total{reason=\"Policy denied\"}."},
	"istio_cert_expiry_seconds": {
		"No Istio component exports it; the sidecar's agent exports istio_agent_cert_expiry_seconds, the seconds left before the workload certificate expires (negative once expired), and istiod exports citadel_server_root_cert_expiry_timestamp and citadel_server_cert_chain_expiry_timestamp for its CA.",
		"Use istio_agent_cert_expiry_seconds (already seconds left: drop `- time()`), or citadel_server_root_cert_expiry_timestamp - time() for the CA."},
	"istio_request_total": {
		"Istio's request counter is istio_requests_total (plural), the first metric of Istio's standard metrics.",
		"Use istio_requests_total."},
}

func init() {
	misnamed["cilium_policy_verdicts_total"] = misnamed["cilium_policy_verdict_total"]
	misnamed["cilium_policy_verdict"] = misnamed["cilium_policy_verdict_total"]
}

func suggestMetric(name string) suggestion {
	if s, ok := misnamed[name]; ok {
		return s
	}
	best, dist := "", 4
	for k := range knownMetricSet {
		if d := levenshtein(name, k); d < dist || (d == dist && k < best) {
			best, dist = k, d
		}
	}
	if best != "" {
		return suggestion{"The closest exported name is " + best + ".", "Use " + best + " if that is what was meant, and check the labels against its documentation."}
	}
	return suggestion{"The name is not among the metrics Istio, Cilium and Hubble document.", "Use a metric the component documents (Istio standard metrics, Cilium and Hubble metrics reference)."}
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// checkMeshConfigMap (PAL-3010): a ConfigMap with a "mesh" key that istiod
// does not read.
func (l *linter) checkMeshConfigMap(d *rawDoc) {
	data := field(d.root, "data")
	k := keyNode(data, "mesh")
	if k == nil {
		return
	}
	md := field(d.root, "metadata")
	name, ns := scalar(md, "name"), scalar(md, "namespace")
	if name == "istio" && ns == l.root {
		return
	}
	l.add("PAL-3010", d.source(k.Line), "ConfigMap "+d.objectName(),
		fmt.Sprintf("ConfigMap %s/%s has a mesh key, but istiod reads mesh configuration only from the ConfigMap istio in %s: these settings are never applied", ns, name, l.root),
		"istiod loads MeshConfig from the ConfigMap named istio (istio-<revision> for a revisioned control plane) in its own namespace, which the IstioOperator's meshConfig generates; any other ConfigMap is ignored.",
		"Move the settings into the IstioOperator's spec.meshConfig (defaultConfig for proxy settings) and delete this ConfigMap.")
}
