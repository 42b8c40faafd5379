package trafficpolicy

import (
	"fmt"
	"testing"

	"github.com/palisade-security/palisade/internal/config"
)

func dr(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: %s}\nspec: %s\n---\n", name, ns, spec)
}

func TestResolve(t *testing.T) {
	const host = "reviews.shop.svc.cluster.local"
	client := Client{Namespace: "web", Labels: map[string]string{"app": "web"}}
	cases := []struct {
		name, cite, docs string
		port             uint32
		rule, tls        string // rule "" means none applies
	}{
		{name: "no rule", cite: "auto mTLS when no DestinationRule sets tls", rule: ""},
		{name: "short host in the service namespace", cite: "DestinationRule host: short names are relative to the rule's namespace",
			docs: dr("shop", "r", "{host: reviews, trafficPolicy: {tls: {mode: DISABLE}}}"), rule: "shop/r", tls: "DISABLE"},
		{name: "a short host elsewhere names another service", cite: "short names are relative to the rule's namespace",
			docs: dr("web", "r", "{host: reviews, trafficPolicy: {tls: {mode: DISABLE}}}"), rule: ""},
		{name: "client namespace first", cite: "istiod lookup: client namespace, then service namespace, then root namespace",
			docs: dr("shop", "svc", "{host: reviews, trafficPolicy: {tls: {mode: DISABLE}}}") + dr("web", "client", "{host: reviews.shop.svc.cluster.local, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}"), rule: "web/client", tls: "ISTIO_MUTUAL"},
		{name: "root namespace last", cite: "root namespace rules apply mesh-wide",
			docs: dr("istio-system", "default", "{host: '*.local', trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}"), rule: "istio-system/default", tls: "ISTIO_MUTUAL"},
		{name: "most specific host", cite: "exact host before wildcard, longer wildcard first",
			docs: dr("shop", "wide", "{host: '*.local', trafficPolicy: {tls: {mode: DISABLE}}}") + dr("shop", "narrow", "{host: '*.shop.svc.cluster.local', trafficPolicy: {tls: {mode: SIMPLE}}}"), rule: "shop/narrow", tls: "SIMPLE"},
		{name: "exportTo dot hides the rule", cite: "exportTo '.': the rule's own namespace only",
			docs: dr("shop", "r", "{host: reviews, exportTo: ['.'], trafficPolicy: {tls: {mode: DISABLE}}}"), rule: ""},
		{name: "port-level settings override", cite: "MergeTrafficPolicy: port-level fields replace rule-level ones",
			docs: dr("shop", "r", "{host: reviews, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}, portLevelSettings: [{port: {number: 9080}, tls: {mode: DISABLE}}]}}"), port: 9080, rule: "shop/r", tls: "DISABLE"},
		{name: "workloadSelector for another client", cite: "DestinationRule workloadSelector: applies to the selected clients only",
			docs: dr("web", "r", "{host: reviews.shop.svc.cluster.local, workloadSelector: {matchLabels: {app: other}}, trafficPolicy: {tls: {mode: DISABLE}}}"), rule: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap, errs := config.Parse("dr.yaml", []byte(c.docs))
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			r := Resolve(snap.DestinationRules, client, host, c.port, "istio-system")
			got, tls := "", ""
			if r.Rule != nil {
				got = r.Rule.Key()
			}
			if m, ok := r.TLSMode(); ok {
				tls = m.String()
			}
			if got != c.rule || tls != c.tls {
				t.Errorf("%s: got rule %q tls %q, want %q %q", c.cite, got, tls, c.rule, c.tls)
			}
		})
	}
}
