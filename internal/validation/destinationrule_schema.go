package validation

import (
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
)

// Schema limits of the DestinationRule CRD.
const (
	maxPortLevelSettings = 4096
	minHTTPErrorCode     = 100
	maxHTTPErrorCode     = 599
)

const schemaDurationMsg = "must be a valid duration greater than 1ms"

// schemaDuration is the CRD's CEL rule duration(self) >= duration('1ms'),
// which, unlike istiod, accepts sub-millisecond precision above 1ms.
func schemaDuration(r *report, path string, d *durationpb.Duration) {
	if d != nil && d.AsDuration() < 1e6 {
		r.err(path, schemaDurationMsg)
	}
}

// schemaDestinationRule applies the CRD schema. `host` is required there;
// an empty host is taken to be a missing one. Required fields inside
// traffic policies (cookie and tunnel fields) cannot be told from empty
// ones after protojson, and istiod checks them anyway.
func schemaDestinationRule(r *report, spec *networkingv1alpha3.DestinationRule) {
	if spec.GetHost() == "" {
		r.err("spec.host", schemaRequired)
	}
	schemaSelector(r, "spec.workloadSelector", spec.GetWorkloadSelector())
	schemaEnums(r, "spec", spec)
	schemaTrafficPolicy(r, "spec.trafficPolicy", spec.GetTrafficPolicy())
	for i, s := range spec.GetSubsets() {
		schemaTrafficPolicy(r, at("spec.subsets", i)+".trafficPolicy", s.GetTrafficPolicy())
	}
}

func schemaTrafficPolicy(r *report, p string, tp *networkingv1alpha3.TrafficPolicy) {
	if tp == nil {
		return
	}
	schemaOutlier(r, p+".outlierDetection", tp.GetOutlierDetection())
	schemaPool(r, p+".connectionPool", tp.GetConnectionPool())
	schemaLB(r, p+".loadBalancer", tp.GetLoadBalancer())
	if n := len(tp.GetPortLevelSettings()); n > maxPortLevelSettings {
		r.err(p+".portLevelSettings", schemaTooMany(n, maxPortLevelSettings))
	}
	for i, pl := range tp.GetPortLevelSettings() {
		pp := at(p+".portLevelSettings", i)
		schemaOutlier(r, pp+".outlierDetection", pl.GetOutlierDetection())
		schemaPool(r, pp+".connectionPool", pl.GetConnectionPool())
		schemaLB(r, pp+".loadBalancer", pl.GetLoadBalancer())
	}
	if rb := tp.GetRetryBudget(); rb.GetPercent() != nil && rb.GetPercent().GetValue() > 100 {
		r.err(p+".retryBudget.percent", fmt.Sprintf("Invalid value: %v: should be less than or equal to 100", rb.GetPercent().GetValue()))
	}
}

func schemaOutlier(r *report, p string, od *networkingv1alpha3.OutlierDetection) {
	if od == nil {
		return
	}
	schemaDuration(r, p+".interval", od.GetInterval())
	schemaDuration(r, p+".baseEjectionTime", od.GetBaseEjectionTime())
	if f := od.GetFailurePercentageThreshold(); f != nil && f.GetValue() > 100 {
		r.err(p+".failurePercentageThreshold", schemaMaximum(int64(f.GetValue()), 100))
	}
	for i, c := range od.GetOutlierDetectionHttpErrorCodes() {
		switch {
		case c < minHTTPErrorCode:
			r.err(at(p+".outlierDetectionHttpErrorCodes", i), schemaMinimum(int64(c), minHTTPErrorCode))
		case c > maxHTTPErrorCode:
			r.err(at(p+".outlierDetectionHttpErrorCodes", i), schemaMaximum(int64(c), maxHTTPErrorCode))
		}
	}
}

func schemaPool(r *report, p string, cp *networkingv1alpha3.ConnectionPoolSettings) {
	if h := cp.GetHttp(); h != nil {
		schemaDuration(r, p+".http.idleTimeout", h.GetIdleTimeout())
		if ka := h.GetHttp2KeepAlive(); ka != nil {
			schemaDuration(r, p+".http.http2KeepAlive.interval", ka.GetInterval())
			schemaDuration(r, p+".http.http2KeepAlive.timeout", ka.GetTimeout())
		}
	}
	// tcp.idleTimeout has no rule: 0s is how it is turned off.
	if t := cp.GetTcp(); t != nil {
		schemaDuration(r, p+".tcp.connectTimeout", t.GetConnectTimeout())
		schemaDuration(r, p+".tcp.maxConnectionDuration", t.GetMaxConnectionDuration())
		if ka := t.GetTcpKeepalive(); ka != nil {
			schemaDuration(r, p+".tcp.tcpKeepalive.time", ka.GetTime())
			schemaDuration(r, p+".tcp.tcpKeepalive.interval", ka.GetInterval())
		}
	}
}

func schemaLB(r *report, p string, lb *networkingv1alpha3.LoadBalancerSettings) {
	if lb == nil {
		return
	}
	schemaDuration(r, p+".warmupDurationSecs", lb.GetWarmupDurationSecs())
	if w := lb.GetWarmup(); w != nil {
		if w.GetDuration() == nil {
			r.err(p+".warmup.duration", schemaRequired)
		}
		schemaDuration(r, p+".warmup.duration", w.GetDuration())
		if m := w.GetMinimumPercent(); m != nil {
			switch v := m.GetValue(); {
			case v > 100:
				r.err(p+".warmup.minimumPercent", fmt.Sprintf("Invalid value: %v: should be less than or equal to 100", v))
			case v < 0:
				r.err(p+".warmup.minimumPercent", fmt.Sprintf("Invalid value: %v: should be greater than or equal to 0", v))
			}
		}
		if a := w.GetAggression(); a != nil && a.GetValue() < 0 {
			r.err(p+".warmup.aggression", fmt.Sprintf("Invalid value: %v: should be greater than or equal to 0", a.GetValue()))
		}
	}
	if m := lb.GetZoneAwareLbSetting().GetMinClusterSize(); m != nil && m.GetValue() < 1 {
		r.err(p+".zoneAwareLbSetting.minClusterSize", schemaMinimum(int64(m.GetValue()), 1))
	}
}
