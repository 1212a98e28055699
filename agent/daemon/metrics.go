package daemon

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/regentcloud/regent/pkg/api"
)

// Reconcile results, the result label of regent_agent_reconcile_total.
const (
	resultOK       = "ok"       // the object matches its spec (state reported)
	resultError    = "error"    // a host or controller error: retried with backoff
	resultConflict = "conflict" // a CAS report lost: the next work fetch decides
	resultInvalid  = "invalid"  // the spec is invalid: UNRESOURCED
	resultWaiting  = "waiting"  // SCRUB_QUEUE within the grace period; another agent instance holds the server or router
	resultRemoved  = "removed"  // a leftover nobody wants, scrubbed after a complete fetch
)

// Metrics are the agent's Prometheus metrics, on a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry

	cores       prometheus.Gauge
	memory      prometheus.Gauge
	diskTotal   *prometheus.GaugeVec
	diskFree    *prometheus.GaugeVec
	reconciles  *prometheus.CounterVec
	buildTime   *prometheus.HistogramVec
	lastFetch   prometheus.Gauge
	lastBeat    prometheus.Gauge
	fetchErrors prometheus.Counter
	registered  prometheus.Gauge

	vpnsFailed   prometheus.Gauge
	vpnsFailedMu sync.Mutex
	vpnsFailedBy map[uint64]int // router → its VPNs that do not run

	degraded          prometheus.Gauge
	metadataFromCache prometheus.Gauge
	imagesRemoved     prometheus.Counter
	imageBytesRemoved prometheus.Counter

	// routerRestarts reads the router builder's count of restarted
	// services (nil: no network role).
	routerRestarts atomic.Pointer[func() uint64]
}

// NewMetrics creates the metrics and registers them (and the Go and
// process collectors) on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), vpnsFailedBy: map[uint64]int{}}
	m.cores = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_capacity_cpu_cores",
		Help: "CPU cores of this server."})
	m.memory = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_capacity_memory_bytes",
		Help: "Memory of this server in bytes."})
	m.diskTotal = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "regent_agent_capacity_disk_total_bytes",
		Help: "Size of the file system of each storage type in bytes."}, []string{"storage_type"})
	m.diskFree = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "regent_agent_capacity_disk_free_bytes",
		Help: "Free space of the file system of each storage type in bytes."}, []string{"storage_type"})
	m.reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "regent_agent_reconcile_total",
		Help: "Reconcile attempts by object kind and result (ok, error, conflict, invalid, waiting, removed)."}, []string{"kind", "result"})
	m.buildTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "regent_agent_build_duration_seconds",
		Help:    "Duration of host changes by object kind and action (build, ensure, update, quiesce, scrub, vpn).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"kind", "action"})
	m.lastFetch = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_last_work_fetch_timestamp_seconds",
		Help: "Unix time of the last successful work fetch."})
	m.lastBeat = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_last_heartbeat_timestamp_seconds",
		Help: "Unix time of the last heartbeat (or registration) a controller took: when the agent last reached one."})
	m.fetchErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "regent_agent_work_fetch_errors_total",
		Help: "Failed work fetches."})
	m.registered = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_registered",
		Help: "1 once the agent has registered with a controller."})
	m.vpnsFailed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_vpns_failed",
		Help: "VPNs of this agent's routers that do not run because their spec cannot be mapped to strongSwan or strongSwan refused it (the VPN's vpn_status error says why)."})
	m.degraded = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_degraded",
		Help: "1 while the agent reports itself degraded (libvirtd not answering, or work fetches failing; see /healthz), else 0."})
	m.metadataFromCache = prometheus.NewGauge(prometheus.GaugeOpts{Name: "regent_agent_metadata_from_cache",
		Help: "1 while the routers' metadata services answer from the copy of the last work saved in data_dir (after a start, until the first work fetch), else 0."})
	m.imagesRemoved = prometheus.NewCounter(prometheus.CounterOpts{Name: "regent_agent_image_volumes_removed_total",
		Help: "Image volumes removed because nothing used them for image_retention."})
	m.imageBytesRemoved = prometheus.NewCounter(prometheus.CounterOpts{Name: "regent_agent_image_volumes_removed_bytes_total",
		Help: "Bytes of the image volumes removed because nothing used them."})
	restarts := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "regent_agent_router_service_restarts_total",
		Help: "Times a virtual router's service (its dnsmasq, DHCP) exited and was restarted."}, func() float64 {
		if f := m.routerRestarts.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	m.Registry.MustRegister(restarts, m.cores, m.memory, m.diskTotal, m.diskFree, m.reconciles, m.buildTime,
		m.lastFetch, m.lastBeat, m.fetchErrors, m.registered, m.vpnsFailed, m.degraded, m.metadataFromCache, m.imagesRemoved, m.imageBytesRemoved,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{resultOK, resultError, resultConflict, resultInvalid, resultWaiting, resultRemoved} {
		m.reconciles.WithLabelValues(api.KindVirtualRouter, r)
	}
	return m
}

// setVPNsFailed records how many VPNs of a router do not run.
func (m *Metrics) setVPNsFailed(router uint64, n int) {
	m.vpnsFailedMu.Lock()
	defer m.vpnsFailedMu.Unlock()
	if n == 0 {
		delete(m.vpnsFailedBy, router)
	} else {
		m.vpnsFailedBy[router] = n
	}
	total := 0
	for _, c := range m.vpnsFailedBy {
		total += c
	}
	m.vpnsFailed.Set(float64(total))
}

func (m *Metrics) setCapacity(c api.Capacity) {
	m.cores.Set(float64(c.CPUCores))
	m.memory.Set(float64(c.RAMMB) * (1 << 20))
	for _, s := range c.Storage {
		m.diskTotal.WithLabelValues(s.Type).Set(float64(s.TotalGB) * (1 << 30))
		m.diskFree.WithLabelValues(s.Type).Set(float64(s.FreeGB) * (1 << 30))
	}
}

func (m *Metrics) reconciled(kind, result string) { m.reconciles.WithLabelValues(kind, result).Inc() }

func (m *Metrics) built(kind, action string, took time.Duration) {
	m.buildTime.WithLabelValues(kind, action).Observe(took.Seconds())
}
