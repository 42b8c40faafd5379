package lint

import "strings"

// The metric names Istio, Cilium, Hubble and Palisade export, from their
// references (see /work/shared/reference/telemetry.md):
//
//   - Istio's standard metrics (istio.io reference/config/metrics; the
//     names istio_stats registers) and istio_build;
//   - the Cilium agent's metrics (Documentation/observability/metrics.rst,
//     "cilium-agent" tables, with the cilium_ prefix), a few names of
//     earlier releases, and Hubble's (hubble_ prefix);
//   - Palisade's own (internal/telemetry).
//
// A name is checked only under a prefix whose names are listed here in
// full; families whose names are generated or vary by release (the
// istio_agent_ and cilium_operator_ metrics, Cilium's feature metrics...)
// are accepted as a whole, and names of other exporters (node_, kube_,
// envoy_, up, ...) are not Palisade's business.

// checkedPrefixes are the prefixes whose names must be listed.
var checkedPrefixes = []string{"istio_", "cilium_", "hubble_", "palisade_"}

// openPrefixes are families accepted without listing their names.
var openPrefixes = []string{
	"istio_agent_",                                    // pilot-agent: certificate, xDS and Go runtime metrics
	"istio_xds_", "istio_dns_", "istio_on_demand_dns", // ztunnel
	"cilium_feature_", "cilium_operator_", "cilium_clustermesh_apiserver_", "cilium_kvstoremesh_",
	"cilium_bgp_control_plane_", "cilium_envoy_",
	"hubble_relay_",
}

var histograms = []string{
	"istio_request_duration_milliseconds", "istio_request_duration_seconds", "istio_request_bytes", "istio_response_bytes",
	"hubble_http_request_duration_seconds", "hubble_kafka_request_duration_seconds",
}

var knownMetricSet = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range []string{
		// Istio standard metrics.
		"istio_requests_total", "istio_request_messages_total", "istio_response_messages_total",
		"istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total",
		"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total", "istio_build",
		// Hubble.
		"hubble_flows_processed_total", "hubble_drop_total", "hubble_policy_verdicts_total",
		"hubble_http_requests_total", "hubble_http_responses_total",
		"hubble_dns_queries_total", "hubble_dns_responses_total", "hubble_dns_response_types_total",
		"hubble_flows_to_world_total", "hubble_icmp_total", "hubble_kafka_requests_total",
		"hubble_port_distribution_total", "hubble_tcp_flags_total", "hubble_lost_events_total",
		"hubble_dynamic_exporter_exporters_total", "hubble_dynamic_exporter_up",
		"hubble_dynamic_exporter_reconfigurations_total", "hubble_dynamic_exporter_config_hash",
		"hubble_dynamic_exporter_config_last_applied",
		// Palisade.
		"palisade_svid_expiry_timestamp_seconds",
	} {
		m[n] = true
	}
	for _, n := range histograms {
		m[n] = true
	}
	for _, n := range []string{
		"endpoint", "endpoint_max_ifindex", "endpoint_regenerations_total", "endpoint_regeneration_time_stats_seconds", "endpoint_state",
		"services_events_total", "service_implementation_delay", "unreachable_nodes", "unreachable_health_endpoints",
		"node_health_connectivity_status", "node_health_connectivity_latency_seconds",
		"node_connectivity_status", "node_connectivity_latency_seconds",
		"clustermesh_global_services", "clustermesh_remote_clusters", "clustermesh_remote_cluster_failures",
		"clustermesh_remote_cluster_nodes", "clustermesh_remote_cluster_last_failure_ts", "clustermesh_remote_cluster_readiness_status",
		"datapath_conntrack_dump_resets_total", "datapath_conntrack_gc_runs_total", "datapath_conntrack_gc_key_fallbacks_total",
		"datapath_conntrack_gc_entries", "datapath_conntrack_gc_duration_seconds",
		"ipsec_xfrm_error", "ipsec_keys", "ipsec_xfrm_states", "ipsec_xfrm_policies",
		"bpf_syscall_duration_seconds", "bpf_map_ops_total", "bpf_map_pressure", "bpf_map_capacity",
		"bpf_maps_virtual_memory_max_bytes", "bpf_progs_virtual_memory_max_bytes", "bpf_ratelimit_dropped_total",
		"drop_count_total", "drop_bytes_total", "forward_count_total", "forward_bytes_total",
		"policy", "policy_regeneration_total", "policy_regeneration_time_stats_seconds", "policy_max_revision",
		"policy_change_total", "policy_endpoint_enforcement_status", "policy_implementation_delay",
		"policy_selector_match_count_max", "policy_incremental_update_duration",
		"proxy_redirects", "proxy_upstream_reply_seconds", "proxy_datapath_update_timeout_total", "policy_l7_total",
		"identity", "identity_label_sources", "identity_gc_entries", "identity_gc_runs", "identity_gc_latency",
		"ipcache_errors_total", "ipcache_events_total", "identity_cache_timer_duration",
		"identity_cache_timer_trigger_latency", "identity_cache_timer_trigger_folds",
		"event_ts", "k8s_event_lag_seconds",
		"controllers_runs_total", "controllers_runs_duration_seconds", "controllers_group_runs_total", "controllers_failing",
		"subprocess_start_total", "kubernetes_events_received_total", "kubernetes_events_total",
		"k8s_cnp_status_completion_seconds", "k8s_terminating_endpoints_events_total",
		"k8s_client_api_latency_time_seconds", "k8s_client_rate_limiter_duration_seconds", "k8s_client_api_calls_total",
		"k8s_workqueue_depth", "k8s_workqueue_adds_total", "k8s_workqueue_queue_duration_seconds",
		"k8s_workqueue_work_duration_seconds", "k8s_workqueue_unfinished_work_seconds",
		"k8s_workqueue_longest_running_processor_seconds", "k8s_workqueue_retries_total",
		"ipam_capacity", "ipam_events_total", "ip_addresses",
		"kvstore_operations_duration_seconds", "kvstore_events_queue_seconds", "kvstore_quorum_errors_total",
		"kvstore_sync_errors_total", "kvstore_sync_queue_size", "kvstore_initial_sync_completed",
		"agent_bootstrap_seconds", "api_process_time_seconds",
		"fqdn_gc_deletions_total", "fqdn_active_names", "fqdn_active_ips", "fqdn_alive_zombie_connections", "fqdn_selectors",
		"jobs_errors_total", "jobs_one_shot_run_seconds", "jobs_timer_run_seconds", "jobs_observer_run_seconds",
		"cidrgroups_referenced", "cidrgroup_translation_time_stats_seconds",
		"api_limiter_adjustment_factor", "api_limiter_processed_requests_total", "api_limiter_processing_duration_seconds",
		"api_limiter_rate_limit", "api_limiter_requests_in_flight", "api_limiter_wait_duration_seconds",
		"api_limiter_wait_history_duration_seconds",
		// Names of earlier releases, still in dashboards that track them.
		"errors_warnings_total", "version", "policy_l7_denied_total", "policy_l7_forwarded_total",
		"policy_l7_received_total", "policy_l7_parse_errors_total", "policy_import_errors_total",
		"endpoint_regenerating", "nodes_all_num", "nodes_all_events_received_total",
	} {
		m["cilium_"+n] = true
	}
	return m
}()

// knownMetric reports whether a name is exported (known) and whether it is
// under a prefix Palisade checks (ours). Histogram and summary series
// (_bucket, _sum, _count) count as their metric.
func knownMetric(name string) (known, ours bool) {
	for _, p := range openPrefixes {
		if strings.HasPrefix(name, p) {
			return true, true
		}
	}
	for _, p := range checkedPrefixes {
		ours = ours || strings.HasPrefix(name, p)
	}
	if !ours {
		return false, false
	}
	if knownMetricSet[name] {
		return true, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && knownMetricSet[base] {
			return true, true
		}
	}
	return false, true
}
