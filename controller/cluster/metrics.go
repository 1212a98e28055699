package cluster

import (
	"errors"
	"sync"
	"time"

	armonmetrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-metrics"
	metricsprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// Process-wide metrics plumbing. hashicorp/raft reports through the global
// of hashicorp/go-metrics, and raft-boltdb/v2 (built without the
// hashicorpmetrics tag) through the global of armon/go-metrics. This is the
// one piece of package-level state, because those globals are.
var (
	metricsMu   sync.Mutex
	metricsSink *metricsprom.PrometheusSink
)

// metricsExpiration drops series not updated for this long (for example
// per-peer series of a removed peer).
const metricsExpiration = 5 * time.Minute

// InstallMetrics routes raft's and raft-boltdb's go-metrics to Prometheus:
// one go-metrics Prometheus sink, registered on reg, becomes the global sink
// of both go-metrics libraries. Metric names are the go-metrics keys joined
// with "_", e.g. raft_commitTime, raft_fsm_apply, raft_boltdb_storeLogs,
// raft_replication_appendEntries_rpc{peer_id=...}.
//
// It is idempotent and process-wide: the first call creates the sink and
// installs it; later calls only register the same sink on their reg (no-op
// when already registered there). Clusters do not need it to run.
func InstallMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return errors.New("cluster: InstallMetrics needs a prometheus.Registerer")
	}
	metricsMu.Lock()
	defer metricsMu.Unlock()

	if metricsSink != nil {
		return registerOnce(reg, metricsSink)
	}
	sink, err := metricsprom.NewPrometheusSinkFrom(metricsprom.PrometheusOpts{
		Expiration: metricsExpiration,
		Registerer: reg,
		Name:       "regent_raft_metrics_sink",
	})
	if err != nil {
		return err
	}

	conf := metrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableServiceLabel = false
	conf.EnableRuntimeMetrics = false // the Prometheus Go collector covers these
	if _, err := metrics.NewGlobal(conf, sink); err != nil {
		reg.Unregister(sink)
		return err
	}

	aconf := armonmetrics.DefaultConfig("")
	aconf.EnableHostname = false
	aconf.EnableHostnameLabel = false
	aconf.EnableServiceLabel = false
	aconf.EnableRuntimeMetrics = false
	if _, err := armonmetrics.NewGlobal(aconf, armonSink{sink}); err != nil {
		reg.Unregister(sink)
		return err
	}

	metricsSink = sink
	return nil
}

func registerOnce(reg prometheus.Registerer, c prometheus.Collector) error {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil
		}
		return err
	}
	return nil
}

// armonSink forwards armon/go-metrics calls to the hashicorp sink.
type armonSink struct{ s *metricsprom.PrometheusSink }

func armonLabels(in []armonmetrics.Label) []metrics.Label {
	if len(in) == 0 {
		return nil
	}
	out := make([]metrics.Label, len(in))
	for i, l := range in {
		out[i] = metrics.Label{Name: l.Name, Value: l.Value}
	}
	return out
}

func (a armonSink) SetGauge(key []string, val float32) { a.s.SetGauge(key, val) }
func (a armonSink) SetGaugeWithLabels(key []string, val float32, labels []armonmetrics.Label) {
	a.s.SetGaugeWithLabels(key, val, armonLabels(labels))
}
func (a armonSink) EmitKey(key []string, val float32)     { a.s.EmitKey(key, val) }
func (a armonSink) IncrCounter(key []string, val float32) { a.s.IncrCounter(key, val) }
func (a armonSink) IncrCounterWithLabels(key []string, val float32, labels []armonmetrics.Label) {
	a.s.IncrCounterWithLabels(key, val, armonLabels(labels))
}
func (a armonSink) AddSample(key []string, val float32) { a.s.AddSample(key, val) }
func (a armonSink) AddSampleWithLabels(key []string, val float32, labels []armonmetrics.Label) {
	a.s.AddSampleWithLabels(key, val, armonLabels(labels))
}
