package dns

import (
	"sync/atomic"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the metrics.
const (
	protoUDP = 0
	protoTCP = 1

	resultSuccess = "success"
	resultFailure = "failure"
	resultRefused = "refused"
)

// commonTypes get a pre-resolved queries_total child per rcode.
var commonTypes = [...]uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeCNAME, mdns.TypeMX,
	mdns.TypeNS, mdns.TypeSOA, mdns.TypeTXT, mdns.TypeSRV, mdns.TypePTR, mdns.TypeANY,
	mdns.TypeCAA, mdns.TypeHTTPS, mdns.TypeDS, mdns.TypeDNSKEY}

const numRcodes = 24 // rcodes 0..23 (BADVERS is 16) are pre-resolved

// metrics holds the server's Prometheus collectors. A nil *metrics is valid
// and records nothing.
type metrics struct {
	queries   *prometheus.CounterVec
	duration  [2]prometheus.Observer
	zones     prometheus.Gauge
	notify    *prometheus.CounterVec
	transfers *prometheus.CounterVec
	answers   *prometheus.CounterVec
	tcpConns  prometheus.Gauge
	truncated prometheus.Counter
	tcpWaits  prometheus.Counter

	// common[i][rcode] caches queries children, filled on first use.
	common [len(commonTypes)][numRcodes]atomic.Pointer[prometheus.Counter]
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_dns_queries_total",
			Help: "DNS queries answered, by query type and response code.",
		}, []string{"qtype", "rcode"}),
		zones: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "regent_dns_zones",
			Help: "Zones currently served.",
		}),
		notify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_dns_notify_total",
			Help: "NOTIFY messages sent to secondaries, by final result after retries.",
		}, []string{"result"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_dns_transfers_total",
			Help: "Zone transfer (AXFR/IXFR) requests over TCP, by result.",
		}, []string{"result"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_dns_transfer_answers_total",
			Help: "Zone transfers served, by answer: full (the whole zone), incremental (IXFR differences from the journal) or current (IXFR from the current serial: its SOA alone).",
		}, []string{"answer"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regent_dns_truncated_total",
			Help: "UDP answers sent truncated (TC set: the answer did not fit, the client should ask again over TCP).",
		}),
		tcpConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "regent_dns_tcp_connections",
			Help: "TCP connections open.",
		}),
		tcpWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regent_dns_tcp_limit_reached_total",
			Help: "Times the server stopped accepting TCP connections because the most it keeps open (TCPConns) were open.",
		}),
	}
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "regent_dns_request_duration_seconds",
		Help:    "Time to answer a DNS request, by transport (UDP: handling only, without socket I/O).",
		Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1, 1},
	}, []string{"proto"})
	for _, c := range []prometheus.Collector{m.queries, m.zones, m.notify, m.transfers, m.answers, m.tcpConns, m.tcpWaits, m.truncated, dur} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.duration[protoUDP] = dur.WithLabelValues("udp")
	m.duration[protoTCP] = dur.WithLabelValues("tcp")
	for _, r := range []string{resultSuccess, resultFailure} {
		m.notify.WithLabelValues(r)
	}
	for _, r := range []string{resultSuccess, resultFailure, resultRefused} {
		m.transfers.WithLabelValues(r)
	}
	for _, a := range []string{answerFull, answerIncremental, answerCurrent} {
		m.answers.WithLabelValues(a)
	}
	return m, nil
}

// queryCounter returns the queries_total child for qtype and rcode.
func (m *metrics) queryCounter(qtype uint16, rcode int) prometheus.Counter {
	if m == nil {
		return nil
	}
	if rcode >= 0 && rcode < numRcodes {
		for i, t := range commonTypes {
			if t == qtype {
				p := &m.common[i][rcode]
				if c := p.Load(); c != nil {
					return *c
				}
				c := m.queries.WithLabelValues(typeLabel(qtype), rcodeLabel(rcode))
				p.Store(&c)
				return c
			}
		}
	}
	return m.queries.WithLabelValues(typeLabel(qtype), rcodeLabel(rcode))
}

func (m *metrics) query(qtype uint16, rcode int) {
	if m != nil {
		m.queryCounter(qtype, rcode).Inc()
	}
}

func (m *metrics) observe(proto int, seconds float64) {
	if m != nil {
		m.duration[proto].Observe(seconds)
	}
}

func (m *metrics) setZones(n int) {
	if m != nil {
		m.zones.Set(float64(n))
	}
}

func (m *metrics) truncatedReply() {
	if m != nil {
		m.truncated.Inc()
	}
}

func (m *metrics) tcpConn(delta float64) {
	if m != nil {
		m.tcpConns.Add(delta)
	}
}

func (m *metrics) tcpLimited() {
	if m != nil {
		m.tcpWaits.Inc()
	}
}

func (m *metrics) notified(result string) {
	if m != nil {
		m.notify.WithLabelValues(result).Inc()
	}
}

func (m *metrics) transferred(result string) {
	if m != nil {
		m.transfers.WithLabelValues(result).Inc()
	}
}

// The answers to a zone transfer (regent_dns_transfer_answers_total).
const (
	answerFull        = "full"
	answerIncremental = "incremental"
	answerCurrent     = "current"
)

func (m *metrics) answered(answer string) {
	if m != nil {
		m.answers.WithLabelValues(answer).Inc()
	}
}

// typeLabel bounds the qtype label to known type names.
func typeLabel(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return "OTHER"
}

// rcodeLabel names an rcode. 16 is BADVERS: a server sends it for an EDNS
// version it does not support (RFC 6891), while miekg/dns's table names it
// BADSIG, its meaning in a TSIG record's error field (RFC 8945), which is
// not a response code we answer.
func rcodeLabel(r int) string {
	if r == mdns.RcodeBadVers {
		return "BADVERS"
	}
	if s, ok := mdns.RcodeToString[r]; ok {
		return s
	}
	return "OTHER"
}
