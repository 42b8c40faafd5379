package validation

import (
	"strings"
	"testing"

	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type drRow struct {
	name string
	ann  map[string]string
	ns   string // metadata namespace; "namespace" when empty
	spec string
	expect
}

func runDR(t *testing.T, rows []drRow) {
	t.Helper()
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			spec := decode(t, &networkingv1alpha3.DestinationRule{}, row.spec)
			meta := testMeta(row.ann)
			if row.ns != "" {
				meta = &metav1.ObjectMeta{Name: "name", Namespace: row.ns, Annotations: row.ann}
			}
			checkReport(t, DestinationRule(meta, spec), row.expect)
		})
	}
}

// wrapping helpers: put a fragment where upstream's unit under test sits.
func drPolicy(tp string) string { return `{"host":"reviews","trafficPolicy":` + tp + `}` }
func drPool(cp string) string   { return drPolicy(`{"connectionPool":` + cp + `}`) }
func drOutlier(od string) string {
	return drPolicy(`{"outlierDetection":` + od + `}`)
}
func drLB(lb string) string   { return drPolicy(`{"loadBalancer":` + lb + `}`) }
func drTLS(tls string) string { return drPolicy(`{"tls":` + tls + `}`) }

const (
	twoSubsets = `"subsets":[{"name":"v1","labels":{"version":"v1"}},{"name":"v2","labels":{"version":"v2"}}]`
	goodPolicy = `{"loadBalancer":{"simple":"ROUND_ROBIN"},"connectionPool":{"tcp":{"maxConnections":7},"http":{"http2MaxRequests":11}},"outlierDetection":{"minHealthPercent":20}}`
	badPolicy  = `{"loadBalancer":{"simple":"ROUND_ROBIN"},"connectionPool":{},"outlierDetection":{"minHealthPercent":20}}`
)

// TestDestinationRuleUpstream ports every row of istio validation_test.go
// TestValidateDestinationRule.
func TestDestinationRuleUpstream(t *testing.T) {
	const emptyPool = "connection pool must have at least one field"
	rows := []drRow{
		// istio validation_test.go TestValidateDestinationRule "simple destination rule"
		{name: "simple destination rule", spec: `{"host":"reviews",` + twoSubsets + `}`, expect: expect{valid: true, only: true}},
		// "simple destination rule with empty selector labels"
		{name: "simple destination rule with empty selector labels", spec: `{"host":"reviews",` + twoSubsets + `,"workloadSelector":{}}`,
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt("spec.workloadSelector", "workload selector specified without labels")}}},
		// "missing destination name"
		{name: "missing destination name", spec: `{"host":"",` + twoSubsets + `}`,
			expect: expect{only: true, want: []Problem{errAt("spec.host", "Required value"), errAt("spec.host", "empty domain name not allowed")}}},
		// "missing subset name"
		{name: "missing subset name", spec: `{"host":"reviews","subsets":[{"name":"","labels":{"version":"v1"}},{"name":"v2","labels":{"version":"v2"}}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.subsets[0].name", "subset name cannot be empty")}}},
		// "duplicate subset names"
		{name: "duplicate subset names", spec: `{"host":"reviews","subsets":[{"name":"foo","labels":{"version":"v1"}},{"name":"foo","labels":{"version":"v2"}}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.subsets[1].name", "duplicate subset names: foo")}}},
		// "valid traffic policy, top level"
		{name: "valid traffic policy, top level", spec: `{"host":"reviews","trafficPolicy":` + goodPolicy + `,` + twoSubsets + `}`,
			expect: expect{valid: true, only: true}},
		// "invalid traffic policy, top level"
		{name: "invalid traffic policy, top level", spec: `{"host":"reviews","trafficPolicy":` + badPolicy + `,` + twoSubsets + `}`,
			expect: expect{only: true, want: []Problem{errAt("spec.trafficPolicy.connectionPool", emptyPool)}}},
		// "valid traffic policy, subset level"
		{name: "valid traffic policy, subset level", spec: `{"host":"reviews","subsets":[{"name":"v1","labels":{"version":"v1"},"trafficPolicy":` + goodPolicy + `},{"name":"v2","labels":{"version":"v2"}}]}`,
			expect: expect{valid: true, only: true}},
		// "invalid traffic policy, subset level"
		{name: "invalid traffic policy, subset level", spec: `{"host":"reviews","subsets":[{"name":"v1","labels":{"version":"v1"},"trafficPolicy":` + badPolicy + `},{"name":"v2","labels":{"version":"v2"}}]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.subsets[0].trafficPolicy.connectionPool", emptyPool)}}},
		// "valid traffic policy, both levels"
		{name: "valid traffic policy, both levels", spec: `{"host":"reviews","trafficPolicy":` + goodPolicy + `,"subsets":[{"name":"v1","labels":{"version":"v1"},"trafficPolicy":` + strings.Replace(goodPolicy, "20", "30", 1) + `},{"name":"v2","labels":{"version":"v2"}}]}`,
			expect: expect{valid: true, only: true}},
	}
	// The InsecureSkipVerify rows, in upstream order.
	const (
		simpleCA   = `"mode":"SIMPLE","caCertificates":"test"`
		simpleCred = `"mode":"SIMPLE","credentialName":"test"`
		san        = `"subjectAltNames":["reviews.default.svc"]`
		mutualCA   = `"mode":"MUTUAL","caCertificates":"test","privateKey":"key","clientCertificate":"cert"`
		mutualCred = `"mode":"MUTUAL","credentialName":"test"`
		skipFalse  = `"insecureSkipVerify":false`
		skipTrue   = `"insecureSkipVerify":true`
	)
	simpleSkipMsg := "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true"
	mutualSkipMsg := "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true"
	for _, r := range []struct {
		name, tls string
		msg       string // "" valid
	}{
		{"InsecureSkipVerify is not specified with tls mode simple, and the ca cert is specified by CaCertificates", simpleCA + "," + san, ""},
		{"InsecureSkipVerify is not specified with tls mode simple, and the ca cert is specified by CredentialName", simpleCred + "," + san, ""},
		{"InsecureSkipVerify is set false with tls mode simple, and the ca cert is specified by CaCertificates", simpleCA + "," + san + "," + skipFalse, ""},
		{"InsecureSkipVerify is set false with tls mode simple, and the ca cert is specified by CredentialName", simpleCred + "," + san + "," + skipFalse, ""},
		{"InsecureSkipVerify is set true with tls mode simple, and the ca cert is specified by CaCertificates", simpleCred + "," + skipTrue, simpleSkipMsg},
		{"InsecureSkipVerify is set true with tls mode simple, and the ca cert is specified by CredentialName", simpleCA + "," + skipTrue, simpleSkipMsg},
		{"InsecureSkipVerify is set true with tls mode simple, and the san is specified", `"mode":"SIMPLE",` + san + "," + skipTrue, simpleSkipMsg},
		{"InsecureSkipVerify is not specified with tls mode mutual, and the ca cert is specified by CaCertificates", mutualCA + "," + san, ""},
		{"InsecureSkipVerify is not specified with tls mode mutual, and the ca cert is specified by CredentialName", mutualCred + "," + san, ""},
		{"InsecureSkipVerify is set false with tls mode mutual, and the ca cert is specified by CaCertificates", mutualCA + "," + san + "," + skipFalse, ""},
		{"InsecureSkipVerify is set false with tls mode mutual, and the ca cert is specified by CredentialName", mutualCred + "," + san + "," + skipFalse, ""},
		{"InsecureSkipVerify is set true with tls mode mutual, and the ca cert is specified by CaCertificates", mutualCA + "," + skipTrue, mutualSkipMsg},
		{"InsecureSkipVerify is set true with tls mode mutual, and the ca cert is specified by CredentialName", mutualCred + "," + skipTrue, ""},
		{"InsecureSkipVerify is set true with tls mode mutual, and the ca cert is not specified", `"mode":"MUTUAL","privateKey":"key","clientCertificate":"cert",` + skipTrue, ""},
		{"InsecureSkipVerify is set true with tls mode mutual, and the san is specified", `"mode":"MUTUAL","privateKey":"key","clientCertificate":"cert",` + san + "," + skipTrue, mutualSkipMsg},
	} {
		e := expect{valid: true, only: true}
		if r.msg != "" {
			e = expect{only: true, want: []Problem{errAt("spec.trafficPolicy.tls.insecureSkipVerify", r.msg)}}
		}
		rows = append(rows, drRow{name: r.name, spec: drTLS(`{` + r.tls + `}`), expect: e})
	}
	if len(rows) != 25 {
		t.Fatalf("upstream table has 25 rows, ported %d", len(rows))
	}
	runDR(t, rows)
}

// TestTrafficPolicyUpstream ports istio validation_test.go TestValidateTrafficPolicy.
func TestTrafficPolicyUpstream(t *testing.T) {
	runDR(t, []drRow{
		// istio TestValidateTrafficPolicy "valid traffic policy"
		{name: "valid traffic policy", spec: drPolicy(goodPolicy), expect: expect{valid: true, only: true}},
		// "invalid traffic policy, nil entries"
		{name: "invalid traffic policy, nil entries", spec: drPolicy(`{}`),
			expect: expect{only: true, want: []Problem{errAt("spec.trafficPolicy", "traffic policy must have at least one field")}}},
		// "invalid traffic policy, missing port in port level settings"
		{name: "invalid traffic policy, missing port in port level settings", spec: drPolicy(`{"portLevelSettings":[` + goodPolicy + `]}`),
			expect: expect{only: true, want: []Problem{errAt("spec.trafficPolicy.portLevelSettings[0].port", "portTrafficPolicy must have valid port")}}},
		// "invalid traffic policy, bad connection pool"
		{name: "invalid traffic policy, bad connection pool", spec: drPolicy(badPolicy),
			expect: expect{only: true, want: []Problem{errAt("spec.trafficPolicy.connectionPool", "connection pool must have at least one field")}}},
		// "invalid traffic policy, bad max connection duration"
		{name: "invalid traffic policy, bad max connection duration", spec: drPolicy(`{"loadBalancer":{"simple":"ROUND_ROBIN"},"connectionPool":{"tcp":{"maxConnectionDuration":"0.000000500s"}}}`),
			expect: expect{only: true, want: []Problem{
				errAt("spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration", "must be a valid duration greater than 1ms"),
				errAt("spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration", "duration must be greater than 1ms"),
			}}},
		// "invalid traffic policy, panic threshold too low"
		{name: "invalid traffic policy, panic threshold too low", spec: drPolicy(strings.Replace(goodPolicy, "20", "-1", 1)),
			expect: expect{only: true, want: []Problem{errAt("spec.trafficPolicy.outlierDetection.minHealthPercent", "percentage -1 is not in range 0..100")}}},
		// "invalid traffic policy, both upgrade and use client protocol set"
		{name: "invalid traffic policy, both upgrade and use client protocol set", spec: drPool(`{"http":{"h2UpgradePolicy":"UPGRADE","useClientProtocol":true}}`),
			expect: expect{only: true, want: []Problem{errAt("spec.trafficPolicy.connectionPool.http.useClientProtocol", "use client protocol must not be true when H2UpgradePolicy is UPGRADE")}}},
	})
}

// TestConnectionPoolUpstream ports every row of istio validation_test.go
// TestValidateConnectionPool.
func TestConnectionPoolUpstream(t *testing.T) {
	const p = "spec.trafficPolicy.connectionPool"
	const http = `"http1MaxPendingRequests":2,"http2MaxRequests":11,"maxRequestsPerConnection":5,"maxRetries":4,"maxConcurrentStreams":5`
	rows := []drRow{
		{name: "valid connection pool, tcp and http", spec: drPool(`{"tcp":{"maxConnections":7,"connectTimeout":"2s"},"http":{` + http + `,"idleTimeout":"30s"}}`), expect: expect{valid: true, only: true}},
		{name: "valid connection pool, tcp only", spec: drPool(`{"tcp":{"maxConnections":7,"connectTimeout":"2s"}}`), expect: expect{valid: true, only: true}},
		{name: "valid connection pool, http only", spec: drPool(`{"http":{` + http + `,"idleTimeout":"30s"}}`), expect: expect{valid: true, only: true}},
		{name: "valid connection pool, http only with empty idle timeout", spec: drPool(`{"http":{` + http + `}}`), expect: expect{valid: true, only: true}},
		{name: "valid connection pool, http2 keepalive", spec: drPool(`{"http":{"http2KeepAlive":{"interval":"15s","timeout":"5s"}}}`), expect: expect{valid: true, only: true}},
		{name: "invalid connection pool, empty", spec: drPool(`{}`),
			expect: expect{only: true, want: []Problem{errAt(p, "connection pool must have at least one field")}}},
		{name: "invalid connection pool, bad max connections", spec: drPool(`{"tcp":{"maxConnections":-1}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".tcp.maxConnections", "max connections must be non-negative")}}},
		{name: "invalid connection pool, bad connect timeout", spec: drPool(`{"tcp":{"connectTimeout":"2.000000005s"}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".tcp.connectTimeout", "only durations to ms precision are supported")}}},
		{name: "invalid connection pool, bad max pending requests", spec: drPool(`{"http":{"http1MaxPendingRequests":-1}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.http1MaxPendingRequests", "http1 max pending requests must be non-negative")}}},
		{name: "invalid connection pool, bad max requests", spec: drPool(`{"http":{"http2MaxRequests":-1}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.http2MaxRequests", "http2 max requests must be non-negative")}}},
		{name: "invalid connection pool, bad max requests per connection", spec: drPool(`{"http":{"maxRequestsPerConnection":-1}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.maxRequestsPerConnection", "max requests per connection must be non-negative")}}},
		{name: "invalid connection pool, bad max retries", spec: drPool(`{"http":{"maxRetries":-1}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.maxRetries", "max retries must be non-negative")}}},
		{name: "invalid connection pool, bad idle timeout", spec: drPool(`{"http":{"idleTimeout":"30.000000005s"}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.idleTimeout", "only durations to ms precision are supported")}}},
		{name: "valid connection pool, tcp timeout disabled", spec: drPool(`{"tcp":{"idleTimeout":"0s"}}`), expect: expect{valid: true, only: true}},
		{name: "invalid connection pool, bad max concurrent streams", spec: drPool(`{"http":{"maxConcurrentStreams":-1}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.maxConcurrentStreams", "max concurrent streams must be non-negative")}}},
		{name: "invalid connection pool, http2 keepalive without interval", spec: drPool(`{"http":{"http2KeepAlive":{"timeout":"5s"}}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.http2KeepAlive.interval", "http2 keepalive interval is required")}}},
		{name: "invalid connection pool, http2 keepalive without timeout", spec: drPool(`{"http":{"http2KeepAlive":{"interval":"15s"}}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.http2KeepAlive.timeout", "http2 keepalive timeout is required")}}},
		{name: "invalid connection pool, bad http2 keepalive interval", spec: drPool(`{"http":{"http2KeepAlive":{"interval":"15.000000005s","timeout":"5s"}}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".http.http2KeepAlive.interval", "only durations to ms precision are supported")}}},
	}
	if len(rows) != 18 {
		t.Fatalf("upstream table has 18 rows, ported %d", len(rows))
	}
	runDR(t, rows)
}

// TestOutlierDetectionUpstream ports every row of istio validation_test.go
// TestValidateOutlierDetection.
func TestOutlierDetectionUpstream(t *testing.T) {
	const p = "spec.trafficPolicy.outlierDetection"
	rows := []drRow{
		{name: "valid outlier detection", spec: drOutlier(`{"interval":"2s","baseEjectionTime":"2s","maxEjectionPercent":50}`), expect: expect{valid: true, only: true}},
		{name: "invalid outlier detection, bad interval", spec: drOutlier(`{"interval":"2.000000005s"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".interval", "only durations to ms precision are supported")}}},
		{name: "invalid outlier detection, bad base ejection time", spec: drOutlier(`{"baseEjectionTime":"2.000000005s"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".baseEjectionTime", "only durations to ms precision are supported")}}},
		{name: "invalid outlier detection, bad max ejection percent", spec: drOutlier(`{"maxEjectionPercent":105}`),
			expect: expect{only: true, want: []Problem{errAt(p+".maxEjectionPercent", "percentage 105 is not in range 0..100")}}},
		{name: "invalid outlier detection, panic threshold too low", spec: drOutlier(`{"minHealthPercent":-1}`),
			expect: expect{only: true, want: []Problem{errAt(p+".minHealthPercent", "percentage -1 is not in range 0..100")}}},
		{name: "invalid outlier detection, panic threshold too high", spec: drOutlier(`{"minHealthPercent":101}`),
			expect: expect{only: true, want: []Problem{errAt(p+".minHealthPercent", "percentage 101 is not in range 0..100")}}},
		{name: "deprecated outlier detection, ConsecutiveErrors", spec: drOutlier(`{"consecutiveErrors":101}`),
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt(p+".consecutiveErrors",
				"outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead")}}},
		{name: "consecutive local origin errors is set but split local origin errors is not set", spec: drOutlier(`{"consecutiveLocalOriginFailures":10}`),
			expect: expect{only: true, want: []Problem{errAt(p+".consecutiveLocalOriginFailures",
				"outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false")}}},
	}
	if len(rows) != 8 {
		t.Fatalf("upstream table has 8 rows, ported %d", len(rows))
	}
	runDR(t, rows)
}

// TestLoadBalancerUpstream ports every row of istio validation_test.go
// TestValidateLoadBalancer (there with no outlier detection, as here).
func TestLoadBalancerUpstream(t *testing.T) {
	const p = "spec.trafficPolicy.loadBalancer"
	const ringWarn = "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead"
	runDR(t, []drRow{
		{name: "valid load balancer with simple load balancing", spec: drLB(`{"simple":"ROUND_ROBIN"}`), expect: expect{valid: true, only: true}},
		{name: "valid load balancer with consistentHash load balancing", spec: drLB(`{"consistentHash":{"minimumRingSize":1024,"httpCookie":{"name":"test","ttl":"3600s"}}}`),
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt(p+".consistentHash.minimumRingSize", ringWarn)}}},
		{name: "invalid load balancer with consistentHash load balancing, missing name", spec: drLB(`{"consistentHash":{"minimumRingSize":1024,"httpCookie":{"ttl":"3600s"}}}`),
			expect: expect{warn: true, only: true, want: []Problem{
				errAt(p+".consistentHash.httpCookie.name", "name required for HttpCookie"),
				warnAt(p+".consistentHash.minimumRingSize", ringWarn),
			}}},
		{name: "invalid load balancer with consistentHash load balancing, maglev not prime", spec: drLB(`{"consistentHash":{"maglev":{"tableSize":1000}}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".consistentHash.maglev.tableSize", "tableSize must be a prime number for maglev")}}},
		{name: "valid load balancer with consistentHash load balancing and unique cookie attributes",
			spec:   drLB(`{"consistentHash":{"httpCookie":{"name":"test-cookie","ttl":"3600s","attributes":[{"name":"SameSite","value":"Strict"},{"name":"Secure","value":"true"},{"name":"HttpOnly","value":"true"}]}}}`),
			expect: expect{valid: true, only: true}},
		{name: "invalid load balancer with consistentHash load balancing and duplicate cookie attribute names",
			spec:   drLB(`{"consistentHash":{"httpCookie":{"name":"test-cookie","ttl":"3600s","attributes":[{"name":"SameSite","value":"Strict"},{"name":"SameSite","value":"Lax"},{"name":"Secure","value":"true"}]}}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".consistentHash.httpCookie.attributes[1].name", "duplicate cookie attribute name: SameSite")}}},
		{name: "invalid load balancer with consistentHash load balancing and empty cookie attribute name",
			spec:   drLB(`{"consistentHash":{"httpCookie":{"name":"test-cookie","ttl":"3600s","attributes":[{"name":"SameSite","value":"Strict"},{"name":"","value":"some-value"},{"name":"Secure","value":"true"}]}}}`),
			expect: expect{only: true, want: []Problem{errAt(p+".consistentHash.httpCookie.attributes[1].name", "cookie attribute name cannot be empty")}}},
		{name: "invalid: localityLbSetting and zoneAwareLbSetting both set", spec: drLB(`{"localityLbSetting":{},"zoneAwareLbSetting":{}}`),
			expect: expect{only: true, want: []Problem{errAt(p, "only one of localityLbSetting and zoneAwareLbSetting can be set")}}},
		{name: "valid: zoneAwareLbSetting only", spec: drLB(`{"zoneAwareLbSetting":{"failover":[{"from":"us-east","to":"eu-west"}]}}`),
			expect: expect{valid: true, warn: true, only: true, want: []Problem{warnAt(p+".zoneAwareLbSetting", "outlier detection policy must be provided for failover")}}},
	})
}

// TestClientTLSUpstream ports every row of istio
// pkg/config/validation/agent/validation_test.go TestValidateTLS.
func TestClientTLSUpstream(t *testing.T) {
	const p = "spec.trafficPolicy.tls"
	const credMsg = "cannot specify client certificates or CA certificate or CA CRL If credentialName is set"
	rows := []drRow{
		{name: "SIMPLE: Credential Name set correctly", spec: drTLS(`{"mode":"SIMPLE","credentialName":"some credential"}`), expect: expect{valid: true, only: true}},
		{name: "SIMPLE CredentialName set with ClientCertificate specified", spec: drTLS(`{"mode":"SIMPLE","credentialName":"credential","clientCertificate":"cert"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".credentialName", credMsg)}}},
		{name: "SIMPLE: CredentialName set with PrivateKey specified", spec: drTLS(`{"mode":"SIMPLE","credentialName":"credential","privateKey":"key"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".credentialName", credMsg)}}},
		{name: "SIMPLE: CredentialName set with CACertficiates specified", spec: drTLS(`{"mode":"SIMPLE","credentialName":"credential","caCertificates":"ca"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".credentialName", credMsg)}}},
		{name: "MUTUAL: Credential Name set correctly", spec: drTLS(`{"mode":"MUTUAL","credentialName":"some credential"}`), expect: expect{valid: true, only: true}},
		{name: "MUTUAL CredentialName set with ClientCertificate specified", spec: drTLS(`{"mode":"MUTUAL","credentialName":"credential","clientCertificate":"cert"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".credentialName", credMsg)}}},
		{name: "MUTUAL: CredentialName set with PrivateKey specified", spec: drTLS(`{"mode":"MUTUAL","credentialName":"credential","privateKey":"key"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".credentialName", credMsg)}}},
		{name: "MUTUAL: CredentialName set with CACertficiates specified", spec: drTLS(`{"mode":"MUTUAL","credentialName":"credential","caCertificates":"ca"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".credentialName", credMsg)}}},
		{name: "MUTUAL: CredentialName set with CACRL specified", spec: drTLS(`{"mode":"MUTUAL","credentialName":"credential","caCrl":"crl"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".credentialName", credMsg)}}},
		{name: "MUTUAL: CredentialName not set with ClientCertificate and Key specified", spec: drTLS(`{"mode":"MUTUAL","clientCertificate":"cert","privateKey":"key"}`), expect: expect{valid: true, only: true}},
		{name: "MUTUAL: CredentialName not set with ClientCertificate specified and Key missing", spec: drTLS(`{"mode":"MUTUAL","clientCertificate":"cert","privateKey":""}`),
			expect: expect{only: true, want: []Problem{errAt(p+".privateKey", "private key required for mutual tls")}}},
		{name: "MUTUAL: CredentialName not set with ClientCertificate missing and Key specified", spec: drTLS(`{"mode":"MUTUAL","clientCertificate":"","privateKey":"key"}`),
			expect: expect{only: true, want: []Problem{errAt(p+".clientCertificate", "client certificate required for mutual tls")}}},
	}
	runDR(t, rows)
}

// TestDestinationRuleRules covers further ValidateDestinationRule,
// ValidateWildcardDomain, validateExportTo, locality and tunnel behaviours,
// and the DestinationRule CRD schema.
func TestDestinationRuleRules(t *testing.T) {
	const tp = "spec.trafficPolicy"
	runDR(t, []drRow{
		// agent TestValidateWildcardDomain: wildcard first labels and IPs.
		{name: "host wildcard", spec: `{"host":"*.bar.com"}`, expect: expect{valid: true, only: true}},
		{name: "host wildcard prefix dash", spec: `{"host":"*-foo.bar.com"}`, expect: expect{valid: true, only: true}},
		{name: "host bad wildcard", spec: `{"host":"foo.*.com"}`,
			expect: expect{only: true, want: []Problem{errAt("spec.host", `domain name "*.com" invalid (label "*" invalid)`)}}},
		{name: "host bad wildcard prefix", spec: `{"host":"foo*.bar.com"}`,
			expect: expect{only: true, want: []Problem{errAt("spec.host", `domain name "foo*.bar.com" invalid (label "foo*" invalid)`)}}},
		{name: "host IP address", spec: `{"host":"1.1.1.1"}`,
			expect: expect{only: true, want: []Problem{errAt("spec.host", `domain name "1.1.1" invalid (top level domain "1" cannot be all-numeric)`)}}},
		{name: "host too long", spec: `{"host":"` + strings.Repeat("x", 256) + `"}`,
			expect: expect{only: true, want: []Problem{errAt("spec.host", `domain name "`+strings.Repeat("x", 256)+`" too long (max 255)`)}}},
		{name: "host trailing dot", spec: `{"host":"reviews.default.svc.cluster.local."}`, expect: expect{valid: true, only: true}},
		// validateSubset: subset names are DNS labels, labels are k8s labels.
		{name: "subset bad name and labels", spec: `{"host":"r","subsets":[{"name":"V_1","labels":{"-bad":"ok","good":"bad value"}}]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.subsets[0].name", "subset name is invalid: V_1"),
				errAt("spec.subsets[0].labels[-bad]", `invalid tag key: "-bad"`),
				errAt("spec.subsets[0].labels[good]", `invalid tag value: "bad value"`),
			}}},
		// validateExportTo.
		{name: "exportTo duplicates", spec: `{"host":"r","exportTo":["namespace",".","ns2","ns2"]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.exportTo[1]", "duplicate entries in exportTo: . and current namespace namespace"),
				errAt("spec.exportTo[3]", "duplicate entries in exportTo for entry ns2"),
			}}},
		{name: "exportTo bad entries", spec: `{"host":"r","exportTo":["~","Bad_NS"]}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.exportTo[0]", "exportTo ~ (none) is not allowed for Istio configuration objects"),
				errAt("spec.exportTo[1]", "only .,*, or a valid DNS 1123 label is allowed as exportTo entry"),
			}}},
		{name: "exportTo public with others", spec: `{"host":"r","exportTo":["*","ns"]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.exportTo", "cannot have both public (*) and non-public exportTo values for a resource")}}},
		{name: "exportTo with selector beyond namespace", spec: `{"host":"r","workloadSelector":{"matchLabels":{"a":"b"}},"exportTo":["other"]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.exportTo", "destination rule with workload selector cannot have exportTo beyond current namespace")}}},
		{name: "exportTo with selector multiple", spec: `{"host":"r","workloadSelector":{"matchLabels":{"a":"b"}},"exportTo":[".","other"]}`,
			expect: expect{only: true, want: []Problem{errAt("spec.exportTo", "destination rule with workload selector cannot have multiple entries in exportTo")}}},
		{name: "exportTo with selector own namespace", spec: `{"host":"r","workloadSelector":{"matchLabels":{"a":"b"}},"exportTo":["."]}`,
			expect: expect{valid: true, only: true}},
		// validateTrafficPolicy: tunnel and proxyProtocol exclude each other.
		{name: "tunnel with proxy protocol", spec: drPolicy(`{"tunnel":{"targetHost":"h","targetPort":80},"proxyProtocol":{}}`),
			expect: expect{only: true, want: []Problem{errAt(tp, "tunnel and proxyProtocol must not be set together")}}},
		// validateTunnelSettings.
		{name: "tunnel bad", spec: drPolicy(`{"tunnel":{"protocol":"GET","targetHost":"bad host","targetPort":0}}`),
			expect: expect{only: true, want: []Problem{
				errAt(tp+".tunnel.protocol", `tunnel protocol must be "CONNECT" or "POST"`),
				errAt(tp+".tunnel.targetHost", `tunnel target host must be valid FQDN or IP address: domain name "bad host" invalid (label "bad host" invalid); bad host is not a valid IP`),
				errAt(tp+".tunnel.targetPort", "tunnel target port is invalid: port number 0 must be in the range 1..65535"),
			}}},
		{name: "tunnel to IP", spec: drPolicy(`{"tunnel":{"protocol":"POST","targetHost":"10.0.0.1","targetPort":8080}}`), expect: expect{valid: true, only: true}},
		// validatePortTrafficPolicies: nil-free entry without settings.
		{name: "port level without settings", spec: drPolicy(`{"portLevelSettings":[{"port":{"number":80}}]}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".portLevelSettings[0]", "port traffic policy must have at least one field")}}},
		// validateOutlierDetection inside port-level settings.
		{name: "port level outlier", spec: drPolicy(`{"portLevelSettings":[{"port":{"number":80},"outlierDetection":{"maxEjectionPercent":101}}]}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".portLevelSettings[0].outlierDetection.maxEjectionPercent", "percentage 101 is not in range 0..100")}}},
		// ValidateTLS: configmap:// credentials must name the resource's namespace.
		{name: "configmap credential other namespace", spec: drTLS(`{"mode":"SIMPLE","credentialName":"configmap://other/ca"}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".tls.credentialName", `invalid configmap:// credentialName: namespace must match the configuration namespace "namespace"`)}}},
		{name: "configmap credential malformed", spec: drTLS(`{"mode":"SIMPLE","credentialName":"configmap://ca"}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".tls.credentialName", `invalid configmap:// credentialName: invalid resource name "configmap://ca". Expected namespace and name`)}}},
		{name: "configmap credential own namespace", spec: drTLS(`{"mode":"SIMPLE","credentialName":"configmap://namespace/ca"}`), expect: expect{valid: true, only: true}},
		// ValidateTLS: ISTIO_MUTUAL and DISABLE ignore certificate fields.
		{name: "istio mutual with files", spec: drTLS(`{"mode":"ISTIO_MUTUAL","clientCertificate":"c","credentialName":"x","caCrl":"y"}`), expect: expect{valid: true, only: true}},
		// ValidateLocalityLbSetting.
		{name: "locality distribute and failover", spec: drLB(`{"localityLbSetting":{"distribute":[{"from":"a/*","to":{"b/*":100}}],"failover":[{"from":"a","to":"b"}]}}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.localityLbSetting", "can not simultaneously specify 'distribute' and 'failover'")}}},
		{name: "locality weights", spec: drLB(`{"localityLbSetting":{"distribute":[{"from":"a/*","to":{"b/*":60,"c/*":30}}]}}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.localityLbSetting.distribute[0].to", "total locality weight 90 != 100")}}},
		{name: "locality overlap", spec: drLB(`{"localityLbSetting":{"distribute":[{"from":"a/*","to":{"b/*":100}},{"from":"a/z","to":{"b/*":100}}]}}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.localityLbSetting.distribute", "locality a/z overlap with previous specified ones")}}},
		{name: "locality failover checks", spec: `{"host":"r","trafficPolicy":{"outlierDetection":{},"loadBalancer":{"localityLbSetting":{"failover":[{"from":"a","to":"a"},{"from":"a/z","to":"b*"}]}}}}`,
			expect: expect{only: true, want: []Problem{
				errAt(tp+".loadBalancer.localityLbSetting.failover[0]", "locality lb failover settings must specify different regions"),
				errAt(tp+".loadBalancer.localityLbSetting.failover[1]", "locality lb failover only specify region"),
				errAt(tp+".loadBalancer.localityLbSetting.failover[1]", "locality lb failover region should not contain '*' wildcard"),
			}}},
		{name: "locality failover with topology priority", spec: drLB(`{"localityLbSetting":{"failover":[{"from":"a","to":"b"}],"failoverPriority":["topology.kubernetes.io/zone"]}}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.localityLbSetting.failoverPriority[0]",
				"can not simultaneously set 'failover' and topology label 'topology.kubernetes.io/zone' in 'failover_priority'")}}},
		// ValidateZoneAwareLbSetting.
		{name: "zone aware topology priority", spec: `{"host":"r","trafficPolicy":{"outlierDetection":{},"loadBalancer":{"zoneAwareLbSetting":{"failoverPriority":["topology.istio.io/subzone"]}}}}`,
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.zoneAwareLbSetting.failoverPriority[0]",
				"'failover_priority' for zone aware lb must not use topology label 'topology.istio.io/subzone'; region- and zone-level routing are handled automatically")}}},
		// validateLoadBalancer: maglev limits and warmup.
		{name: "maglev zero", spec: drLB(`{"consistentHash":{"maglev":{"tableSize":0}}}`),
			expect: expect{only: true, want: []Problem{
				errAt(tp+".loadBalancer.consistentHash.maglev.tableSize", "tableSize must be set for maglev"),
				errAt(tp+".loadBalancer.consistentHash.maglev.tableSize", "tableSize must be a prime number for maglev"),
			}}},
		{name: "maglev prime ok", spec: drLB(`{"consistentHash":{"maglev":{"tableSize":65537}}}`), expect: expect{valid: true, only: true}},
		{name: "maglev too large", spec: drLB(`{"consistentHash":{"maglev":{"tableSize":"18446744073709551557"}}}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.consistentHash.maglev.tableSize", "tableSize must be less than 5000011 for maglev")}}},
		{name: "ring size with algorithm", spec: drLB(`{"consistentHash":{"minimumRingSize":8,"ringHash":{}}}`),
			expect: expect{warn: true, want: []Problem{errAt(tp+".loadBalancer.consistentHash", "only one of MinimumRingSize or Maglev/Ringhash can be specified")}}},
		{name: "warmup", spec: drLB(`{"warmup":{"minimumPercent":101,"aggression":0}}`),
			expect: expect{only: true, want: []Problem{
				errAt(tp+".loadBalancer.warmup.duration", "Required value"),
				errAt(tp+".loadBalancer.warmup.minimumPercent", "Invalid value: 101: should be less than or equal to 100"),
				errAt(tp+".loadBalancer.warmup.duration", "duration is required"),
				errAt(tp+".loadBalancer.warmup.minimumPercent", "minimumPercent value should be less than or equal to 100"),
				errAt(tp+".loadBalancer.warmup.aggression", "aggression should be greater than 0"),
			}}},
		// validateConnectionPool: tcp keepalive durations, idle timeout under 1ms skipped.
		{name: "tcp keepalive and idle", spec: drPool(`{"tcp":{"idleTimeout":"0.0005s","tcpKeepalive":{"time":"0.5s","interval":"0.0001s"}}}`),
			expect: expect{only: true, want: []Problem{
				errAt(tp+".connectionPool.tcp.tcpKeepalive.interval", "must be a valid duration greater than 1ms"),
				errAt(tp+".connectionPool.tcp.tcpKeepalive.interval", "duration must be greater than 1ms"),
			}}},
		// CRD: outlierDetectionHttpErrorCodes 100..599, failurePercentageThreshold <= 100.
		{name: "CRD outlier ranges", spec: drOutlier(`{"outlierDetectionHttpErrorCodes":[99,503,600],"failurePercentageThreshold":101}`),
			expect: expect{only: true, want: []Problem{
				errAt(tp+".outlierDetection.failurePercentageThreshold", "Invalid value: 101: should be less than or equal to 100"),
				errAt(tp+".outlierDetection.outlierDetectionHttpErrorCodes[0]", "Invalid value: 99: should be greater than or equal to 100"),
				errAt(tp+".outlierDetection.outlierDetectionHttpErrorCodes[2]", "Invalid value: 600: should be less than or equal to 599"),
			}}},
		// CRD: duration CEL accepts sub-ms precision above 1ms; istiod does not.
		{name: "CRD duration precision", spec: drOutlier(`{"interval":"0.0015s"}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".outlierDetection.interval", "only durations to ms precision are supported")}}},
		// CRD: warmupDurationSecs CEL (istiod does not check it).
		{name: "CRD warmupDurationSecs", spec: drLB(`{"warmupDurationSecs":"0s"}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.warmupDurationSecs", "must be a valid duration greater than 1ms")}}},
		// CRD: zoneAwareLbSetting.minClusterSize >= 1.
		{name: "CRD minClusterSize", spec: drLB(`{"zoneAwareLbSetting":{"minClusterSize":0}}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".loadBalancer.zoneAwareLbSetting.minClusterSize", "Invalid value: 0: should be greater than or equal to 1")}}},
		// CRD: workloadSelector label rules.
		{name: "CRD workload selector", spec: `{"host":"r","workloadSelector":{"matchLabels":{"a*":"b"}}}`,
			expect: expect{only: true, want: []Problem{
				errAt("spec.workloadSelector.matchLabels", "wildcard not allowed in label key match"),
				errAt("spec.workloadSelector.matchLabels[a*]", `wildcard is not supported in selector: "a*=b"`),
			}}},
		// validateMetadata: dry-run is refused on DestinationRule; the kind's
		// own checks (the bad host) then do not run.
		{name: "dry run annotation", ann: map[string]string{"istio.io/dry-run": "true"}, spec: `{"host":"a b"}`,
			expect: expect{only: true, want: []Problem{errAt("metadata.annotations",
				"namespace/name has unsupported annotation istio.io/dry-run, please remove the annotation")}}},
		// ValidateTLS: configmap:// with no namespace configured at all.
		{name: "configmap credential without namespace", ns: "", spec: drTLS(`{"mode":"SIMPLE","credentialName":"configmap:///ca"}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".tls.credentialName", `invalid configmap:// credentialName: invalid resource name "configmap:///ca". Expected namespace`)}}},
		// CRD: enum values.
		{name: "CRD tls mode enum", spec: drTLS(`{"mode":12}`),
			expect: expect{only: true, want: []Problem{errAt(tp+".tls.mode", `Unsupported value: 12: supported values: "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"`)}}},
	})

	// CRD portLevelSettings maxItems 4096 (Go-built for size).
	spec := &networkingv1alpha3.DestinationRule{Host: "r", TrafficPolicy: &networkingv1alpha3.TrafficPolicy{}}
	for i := 0; i < 4097; i++ {
		spec.TrafficPolicy.PortLevelSettings = append(spec.TrafficPolicy.PortLevelSettings, &networkingv1alpha3.TrafficPolicy_PortTrafficPolicy{
			Port: &networkingv1alpha3.PortSelector{Number: 80},
			Tls:  &networkingv1alpha3.ClientTLSSettings{},
		})
	}
	checkReport(t, DestinationRule(testMeta(nil), spec), expect{only: true, want: []Problem{
		errAt(tp+".portLevelSettings", "Too many: 4097: must have at most 4096 items"),
	}})
	// Go-only: nil subset and nil port-level entry.
	spec = &networkingv1alpha3.DestinationRule{Host: "r", Subsets: []*networkingv1alpha3.Subset{nil},
		TrafficPolicy: &networkingv1alpha3.TrafficPolicy{PortLevelSettings: []*networkingv1alpha3.TrafficPolicy_PortTrafficPolicy{nil}}}
	checkReport(t, DestinationRule(nil, spec), expect{only: true, want: []Problem{
		errAt(tp+".portLevelSettings[0]", "traffic policy may not be null"),
		errAt("spec.subsets[0]", "subset may not be null"),
	}})
	checkReport(t, DestinationRule(nil, nil), expect{only: true, want: []Problem{
		errAt("spec.host", "Required value"), errAt("spec.host", "empty domain name not allowed"),
	}})
}
