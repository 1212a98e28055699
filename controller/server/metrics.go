package server

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/regentcloud/regent/controller/state"
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
