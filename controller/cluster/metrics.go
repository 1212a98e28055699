package cluster

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

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
// of both go-metrics libraries, behind promNames, which names the series by
// Prometheus conventions: the go-metrics key (and label names) in snake case, timings in
// seconds with the suffix _seconds, counters with _total, e.g.
// raft_commit_time_seconds, raft_fsm_apply_seconds, raft_apply_total,
// raft_boltdb_store_logs_seconds,
// raft_replication_append_entries_rpc_seconds{peer_id=...}.
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
	var counters []metricsprom.CounterDefinition
	for _, key := range steadyCounters {
		counters = append(counters, metricsprom.CounterDefinition{
			Name: []string{promName(counterKind, key)},
			Help: "hashicorp/raft's counter " + strings.Join(key, ".") + ".",
		})
	}
	sink, err := metricsprom.NewPrometheusSinkFrom(metricsprom.PrometheusOpts{
		Expiration:         metricsExpiration,
		Registerer:         reg,
		Name:               "regent_raft_metrics_sink",
		CounterDefinitions: counters,
	})
	if err != nil {
		return err
	}

	conf := metrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableServiceLabel = false
	conf.EnableRuntimeMetrics = false // the Prometheus Go collector covers these
	named := &promNames{sink: sink}
	if _, err := metrics.NewGlobal(conf, named); err != nil {
		reg.Unregister(sink)
		return err
	}

	aconf := armonmetrics.DefaultConfig("")
	aconf.EnableHostname = false
	aconf.EnableHostnameLabel = false
	aconf.EnableServiceLabel = false
	aconf.EnableRuntimeMetrics = false
	if _, err := armonmetrics.NewGlobal(aconf, armonSink{named}); err != nil {
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
type armonSink struct{ s metrics.MetricSink }

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

// steadyCounters are declared up front: they exist from the start at 0 and
// never expire, so rate() and increase() over them work (for example an
// alert on raft_state_candidate_total, i.e. elections).
var steadyCounters = [][]string{
	{"raft", "apply"}, {"raft", "barrier"}, {"raft", "restore"}, {"raft", "verify_leader"},
	{"raft", "state", "candidate"}, {"raft", "state", "follower"}, {"raft", "state", "leader"},
	{"raft", "transition", "heartbeat_timeout"}, {"raft", "transition", "leader_lease_timeout"},
}

type metricKind int

const (
	gaugeKind metricKind = iota
	counterKind
	sampleKind
)

// notTimings are the samples (and gauges) of raft and raft-boltdb that are
// not durations in milliseconds; the value is the unit suffix.
var notTimings = map[string]string{
	"raft.fsm.applyBatchNum":       "",
	"raft.boltdb.logBatchSize":     "_bytes",
	"raft.boltdb.logSize":          "_bytes",
	"raft.boltdb.logsPerBatch":     "",
	"raft.boltdb.writeCapacity":    "", // logs per second
	"raft.fsm.lastRestoreDuration": "_seconds",
}

// promName names a go-metrics key by Prometheus conventions: its parts in
// snake case joined by "_", counters with _total, millisecond timings (every
// sample but notTimings) in seconds with _seconds.
func promName(kind metricKind, key []string) string {
	var b strings.Builder
	for i, part := range key {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(snakeCase(part))
	}
	switch kind {
	case counterKind:
		b.WriteString("_total")
	case sampleKind:
		if unit, ok := notTimings[strings.Join(key, ".")]; ok {
			b.WriteString(unit)
		} else {
			b.WriteString("_seconds")
		}
	case gaugeKind:
		if strings.Join(key, ".") == "raft.fsm.lastRestoreDuration" {
			b.WriteString("_seconds")
		}
	}
	return b.String()
}

// snakeCase turns a camel-case go-metrics key part or label name into snake
// case, an acronym as one word: getRPCType is get_rpc_type, rpcType rpc_type.
func snakeCase(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for j, r := range rs {
		if unicode.IsUpper(r) {
			prev, next := rune(0), rune(0)
			if j > 0 {
				prev = rs[j-1]
			}
			if j+1 < len(rs) {
				next = rs[j+1]
			}
			// a word starts here: after a lower-case letter or digit, or as
			// the last capital of an acronym followed by lower case (RPCType)
			if j > 0 && (unicode.IsLower(prev) || unicode.IsDigit(prev) || unicode.IsUpper(prev) && unicode.IsLower(next)) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// promLabels names labels in snake case (raft's rpcType becomes rpc_type).
func promLabels(in []metrics.Label) []metrics.Label {
	for i, l := range in {
		if n := snakeCase(l.Name); n != l.Name {
			out := slices.Clone(in)
			for j := i; j < len(out); j++ {
				out[j].Name = snakeCase(out[j].Name)
			}
			return out
		}
	}
	return in
}

// promNames renames go-metrics keys by promName before the Prometheus sink
// and scales milliseconds to seconds. It drops the series raft keeps only
// for compatibility that name a peer in the key
// (raft.replication.heartbeat.<peer>): each has a twin with a peer_id label.
type promNames struct {
	sink  metrics.MetricSink
	names sync.Map // kind + joined key → name and scale
}

type promNamed struct {
	key   []string
	scale float32
	drop  bool
}

func (p *promNames) name(kind metricKind, key []string, labelled bool) *promNamed {
	id := string(rune('0'+kind)) + strings.Join(key, "\x00")
	if labelled {
		id += "\x00L"
	}
	if v, ok := p.names.Load(id); ok {
		return v.(*promNamed)
	}
	n := &promNamed{key: []string{promName(kind, key)}, scale: 1}
	if !labelled && len(key) > 2 && key[0] == "raft" && key[1] == "replication" {
		n.drop = true
	}
	if strings.HasSuffix(n.key[0], "_seconds") { // go-metrics times in milliseconds
		n.scale = 0.001
	}
	v, _ := p.names.LoadOrStore(id, n)
	return v.(*promNamed)
}

func (p *promNames) SetGauge(key []string, val float32) {
	if n := p.name(gaugeKind, key, false); !n.drop {
		p.sink.SetGauge(n.key, val*n.scale)
	}
}
func (p *promNames) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label) {
	if n := p.name(gaugeKind, key, true); !n.drop {
		p.sink.SetGaugeWithLabels(n.key, val*n.scale, promLabels(labels))
	}
}
func (p *promNames) EmitKey(key []string, val float32) {
	if n := p.name(gaugeKind, key, false); !n.drop {
		p.sink.EmitKey(n.key, val*n.scale)
	}
}
func (p *promNames) IncrCounter(key []string, val float32) {
	if n := p.name(counterKind, key, false); !n.drop {
		p.sink.IncrCounter(n.key, val)
	}
}
func (p *promNames) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	if n := p.name(counterKind, key, true); !n.drop {
		p.sink.IncrCounterWithLabels(n.key, val, promLabels(labels))
	}
}
func (p *promNames) AddSample(key []string, val float32) {
	if n := p.name(sampleKind, key, false); !n.drop {
		p.sink.AddSample(n.key, val*n.scale)
	}
}
func (p *promNames) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	if n := p.name(sampleKind, key, true); !n.drop {
		p.sink.AddSampleWithLabels(n.key, val*n.scale, promLabels(labels))
	}
}
