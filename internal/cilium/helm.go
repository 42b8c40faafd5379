package cilium

import (
	"fmt"
	"regexp"
	"strings"
)

// Policy enforcement modes (Helm policyEnforcementMode, agent
// --enable-policy; Documentation/security/policy/intro.rst).
const (
	// EnforcementDefault enforces policy on an endpoint, per direction,
	// once a rule with entries for that direction selects it.
	EnforcementDefault = "default"
	// EnforcementAlways enforces policy on every endpoint, selected or not.
	EnforcementAlways = "always"
	// EnforcementNever enforces no policy at all.
	EnforcementNever = "never"
)

// HelmValues are the Cilium Helm chart settings Palisade needs.
type HelmValues struct {
	// PolicyEnforcementMode is policyEnforcementMode, lower-cased as the
	// chart renders it into enable-policy: "default", "always" or "never".
	PolicyEnforcementMode string
	// PolicyAuditMode is policyAuditMode: would-be drops are only logged
	// (Hubble verdict AUDIT).
	PolicyAuditMode bool
	// ClusterName is cluster.name, which the "cluster" entity and the
	// io.cilium.k8s.policy.cluster label refer to.
	ClusterName string
}

// DefaultHelmValues returns the chart defaults for the HelmValues fields.
func DefaultHelmValues() HelmValues {
	return HelmValues{PolicyEnforcementMode: EnforcementDefault, ClusterName: "default"}
}

// HelmValueError is a problem with one key of a values file.
type HelmValueError struct {
	Key string // dotted key, e.g. "cluster.name"
	Msg string
}

func (e *HelmValueError) Error() string { return e.Key + ": " + e.Msg }

// clusterNamePattern is the cluster name syntax the agent enforces: at
// most 32 lower-case alphanumerics and '-', starting and ending with an
// alphanumeric (pkg/clustermesh/types ValidateClusterName).
var clusterNamePattern = regexp.MustCompile(`^([a-z0-9][-a-z0-9]*)?[a-z0-9]$`)

// ParseHelmValues reads the HelmValues settings from a decoded values file
// and ignores every other key. Missing or null keys keep their chart
// defaults. A key of the wrong type, or with a value the chart or agent
// rejects, yields a *HelmValueError naming the key; the other keys are
// still read. Nested mappings may be map[string]any or map[any]any (as
// produced by YAML decoders).
func ParseHelmValues(values map[string]any) (HelmValues, []error) {
	hv := DefaultHelmValues()
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &HelmValueError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if x := values["policyEnforcementMode"]; x != nil {
		if s, ok := x.(string); !ok {
			fail("policyEnforcementMode", "expected a string, got %s", typeName(x))
		} else {
			switch mode := strings.ToLower(s); mode {
			case EnforcementDefault, EnforcementAlways, EnforcementNever:
				hv.PolicyEnforcementMode = mode
			default:
				fail("policyEnforcementMode", "unsupported value %q: supported values: \"default\", \"always\", \"never\"", s)
			}
		}
	}

	if x := values["policyAuditMode"]; x != nil {
		if b, ok := x.(bool); ok {
			hv.PolicyAuditMode = b
		} else {
			fail("policyAuditMode", "expected a boolean, got %s", typeName(x))
		}
	}

	if x := values["cluster"]; x != nil {
		cluster, ok := asStringMap(x)
		if !ok {
			fail("cluster", "expected a mapping, got %s", typeName(x))
		} else if n := cluster["name"]; n != nil {
			if s, ok := n.(string); !ok {
				fail("cluster.name", "expected a string, got %s", typeName(n))
			} else {
				hv.ClusterName = s
				if len(s) > 32 || !clusterNamePattern.MatchString(s) {
					fail("cluster.name", "%q must be at most 32 lower case alphanumeric characters or '-', starting and ending with an alphanumeric character", s)
				}
			}
		}
	}
	return hv, errs
}

// asStringMap accepts the mapping types YAML decoders produce.
func asStringMap(x any) (map[string]any, bool) {
	switch m := x.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			ks, ok := k.(string)
			if !ok {
				continue
			}
			out[ks] = v
		}
		return out, true
	}
	return nil, false
}

// typeName describes a decoded YAML/JSON value for error messages.
func typeName(x any) string {
	switch x.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", x)
}
