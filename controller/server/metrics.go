package server

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/robot"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// ipamCollector reports, at scrape time, how full each top-level IP block
// is: the addresses held (allocated or released but not yet purged) in the
// block and all its subnets, over the addresses the top-level block can hand
// out. It reads one consistent snapshot of the state.
type ipamCollector struct {
	store *state.Store
	ratio *prometheus.Desc
	held  *prometheus.Desc
}

func newIPAMCollector(store *state.Store) *ipamCollector {
	labels := []string{"block", "cidr", "dialect"}
	return &ipamCollector{
		store: store,
		ratio: prometheus.NewDesc("regent_ipam_block_utilisation_ratio",
			"Held addresses in a top-level IP block and its subnets over the block's usable addresses.", labels, nil),
		held: prometheus.NewDesc("regent_ipam_block_held_addresses",
			"Addresses held (allocated or awaiting purge) in a top-level IP block and its subnets.", labels, nil),
	}
}

func (c *ipamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ratio
	ch <- c.held
}

func (c *ipamCollector) Collect(ch chan<- prometheus.Metric) {
	rt := c.store.Read()
	blocks := rt.IPBlockList()
	parent := make(map[uint64]uint64, len(blocks))
	for _, b := range blocks {
		parent[b.ID] = b.ParentID
	}
	root := func(id uint64) uint64 {
		for depth := 0; parent[id] != 0 && depth < 64; depth++ {
			id = parent[id]
		}
		return id
	}
	held := map[uint64]netx.U128{}
	for _, b := range blocks {
		if u, ok := rt.IPBlockUtilisation(b.ID); ok {
			r := root(b.ID)
			held[r] = held[r].Add(u.Allocated).Add(u.Deallocated)
		}
	}
	for _, b := range blocks {
		if b.ParentID != 0 {
			continue
		}
		u, ok := rt.IPBlockUtilisation(b.ID)
		if !ok {
			continue
		}
		h, usable := held[b.ID].Float64(), u.Usable.Float64()
		ratio := 0.0
		if usable > 0 {
			ratio = h / usable
		}
		labels := []string{strconv.FormatUint(b.ID, 10), b.CIDR, b.Dialect}
		ch <- prometheus.MustNewConstMetric(c.ratio, prometheus.GaugeValue, ratio, labels...)
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, h, labels...)
	}
}

// workQueueCollector reports, at scrape time, the robots' work queue: the
// VMs, virtual routers, snapshots and backups that are not in a stable
// state (asked for work, or being worked on), by kind and state, and those
// UNRESOURCED (state 3 is stable in no map but needs an operator). It
// reads one consistent snapshot of the state.
type workQueueCollector struct {
	store *state.Store
	depth *prometheus.Desc
}

func newWorkQueueCollector(store *state.Store) *workQueueCollector {
	return &workQueueCollector{store: store, depth: prometheus.NewDesc("regent_work_queue_objects",
		"Objects not in a stable state (waiting for a robot, or being worked on), by kind and state.", []string{"kind", "state"}, nil)}
}

func (c *workQueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.depth }

func (c *workQueueCollector) Collect(ch chan<- prometheus.Metric) {
	rt := c.store.Read()
	type key struct {
		kind  string
		state int
	}
	n := map[key]int{}
	count := func(kind string, s int) {
		if !api.IsStable(s) {
			n[key{kind, s}]++
		}
	}
	for _, v := range rt.VMList() {
		count(api.KindVM, v.State)
	}
	for _, v := range rt.VirtualRouterList() {
		count(api.KindVirtualRouter, v.State)
	}
	for _, v := range rt.SnapshotList() {
		count(api.KindSnapshot, v.State)
	}
	for _, v := range rt.BackupList() {
		count(api.KindBackup, v.State)
	}
	// Every kind's requested states appear (0 when empty), so a dashboard
	// sees the series before the first request.
	for _, kind := range []string{api.KindVM, api.KindVirtualRouter, api.KindSnapshot, api.KindBackup} {
		for _, s := range api.RobotProcessStates {
			if _, ok := n[key{kind, s}]; !ok {
				n[key{kind, s}] = 0
			}
		}
	}
	for k, v := range n {
		name := api.StateNames[k.state]
		if name == "" {
			name = strconv.Itoa(k.state)
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(v), k.kind, strings.ToLower(name))
	}
}

// agentHealthCollector reports, at scrape time, the health every agent
// last reported in its heartbeats, as the leader remembers it: for each
// server and router an agent has registered for (so one series set per
// host), 1 on the series of its health (ok, degraded or unknown) and 0 on
// the other two, as kube-state-metrics reports a state set. Heartbeats are
// leader memory, so a node that does not lead reports no series at all
// rather than stale or empty figures; after a leader change the new leader
// reports unknown until each agent's next heartbeat.
type agentHealthCollector struct {
	store  *state.Store
	hb     *robot.Heartbeats
	health *prometheus.Desc
}

func newAgentHealthCollector(store *state.Store, hb *robot.Heartbeats) *agentHealthCollector {
	return &agentHealthCollector{store: store, hb: hb, health: prometheus.NewDesc("regent_agent_health",
		"Health an agent reported in its last heartbeat (1 on the series of its health: ok, degraded, or unknown when the leader has no current report), by the server or router it acts for. Leader only.",
		[]string{"kind", "id", "hostname", "health"}, nil)}
}

func (c *agentHealthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.health }

func (c *agentHealthCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.hb.Leading() {
		return
	}
	rt, now := c.store.Read(), time.Now()
	emit := func(kind string, id uint64, hostname, health string) {
		for _, h := range []string{api.AgentHealthOK, api.AgentHealthDegraded, api.AgentHealthUnknown} {
			v := 0.0
			if h == health {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.health, prometheus.GaugeValue, v, kind, strconv.FormatUint(id, 10), hostname, h)
		}
	}
	for _, s := range rt.ServerList() {
		if s.Status != "" { // an agent registered for it
			h, _ := c.hb.ServerHealth(s.ID, now)
			emit("server", s.ID, s.Hostname, h)
		}
	}
	for _, r := range rt.RouterList() {
		if r.Status != "" {
			h, _ := c.hb.RouterHealth(r.ID, now)
			emit("router", r.ID, r.Hostname, h)
		}
	}
}
