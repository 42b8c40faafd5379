package cilium

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestParseHelmValues(t *testing.T) {
	for _, c := range []struct {
		name, src, values string
		want              HelmValues
		errKeys           []string
	}{
		{"defaults", "cilium chart values.yaml: policyEnforcementMode default, policyAuditMode false, cluster.name default",
			`{}`, HelmValues{"default", false, "default"}, nil},
		{"all set, other keys ignored", "values.yaml keys policyEnforcementMode, policyAuditMode, cluster.name",
			`{policyEnforcementMode: always, policyAuditMode: true, cluster: {name: prod-1, id: 3}, hubble: {enabled: true}, kubeProxyReplacement: "true"}`,
			HelmValues{"always", true, "prod-1"}, nil},
		{"mode is lower-cased", "configmap template: enable-policy: {{ lower .Values.policyEnforcementMode }}",
			`{policyEnforcementMode: Never}`, HelmValues{"never", false, "default"}, nil},
		{"nulls keep defaults", "helm: a null value removes the key",
			`{policyEnforcementMode: null, policyAuditMode: null, cluster: null}`, HelmValues{"default", false, "default"}, nil},
		{"bad values", "agent option enable-policy {default|always|never}; bool flag; cluster name syntax",
			`{policyEnforcementMode: strict, policyAuditMode: "yes", cluster: {name: Prod_1}}`,
			HelmValues{"default", false, "Prod_1"}, []string{"policyEnforcementMode", "policyAuditMode", "cluster.name"}},
		{"wrong types", "type errors name the key",
			`{policyEnforcementMode: 1, cluster: [a]}`, HelmValues{"default", false, "default"}, []string{"policyEnforcementMode", "cluster"}},
		{"cluster name type", "type errors name the key",
			`{cluster: {name: 7}}`, HelmValues{"default", false, "default"}, []string{"cluster.name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(c.values), &m); err != nil {
				t.Fatal(err)
			}
			got, errs := ParseHelmValues(m)
			if got != c.want {
				t.Errorf("[%s] got %+v, want %+v", c.src, got, c.want)
			}
			var keys []string
			for _, err := range errs {
				var he *HelmValueError
				if !errors.As(err, &he) {
					t.Fatalf("error %v is not a *HelmValueError", err)
				}
				keys = append(keys, he.Key)
			}
			if len(keys) != len(c.errKeys) {
				t.Fatalf("[%s] errors %v, want keys %v", c.src, errs, c.errKeys)
			}
			for i := range keys {
				if keys[i] != c.errKeys[i] {
					t.Errorf("[%s] errors %v, want keys %v", c.src, errs, c.errKeys)
				}
			}
		})
	}
	// map[any]any, as yaml.v2 decodes nested mappings.
	got, errs := ParseHelmValues(map[string]any{"cluster": map[any]any{"name": "c2", 1: "x"}})
	if got.ClusterName != "c2" || len(errs) != 0 {
		t.Errorf("map[any]any: %+v %v", got, errs)
	}
}
