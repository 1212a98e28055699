package vm

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regentcloud/regent/agent/hostinfo"
	"github.com/regentcloud/regent/pkg/api"
)

// Capacity is what the hypervisor has for guests: cores from libvirt's
// node info; memory from /proc/meminfo when readable (libvirt's node
// figures are unreliable on nested virtual machines), node info otherwise;
// storage from the pool of each configured storage type (pools are
// created on the way).
func (b *Builder) Capacity(ctx context.Context) (api.Capacity, error) {
	var c api.Capacity
	ni, err := b.lv.NodeInfo(ctx)
	if err != nil {
		return c, lv(err, "node info")
	}
	c.CPUCores = ni.CPUs
	c.RAMMB = ni.MemoryKiB >> 10
	if kb, err := hostinfo.MemTotalKiB("/proc/meminfo"); err == nil {
		if d := int64(kb) - int64(ni.MemoryKiB); d > int64(kb)/20 || -d > int64(kb)/20 {
			b.log.Debug("libvirt node memory differs from /proc/meminfo: using meminfo",
				"libvirt_kib", ni.MemoryKiB, "meminfo_kib", kb)
		}
		c.RAMMB = kb >> 10
	}
	types := append([]string(nil), b.cfg.StorageTypes...)
	sort.Strings(types)
	for _, t := range types {
		pool, err := b.ensurePool(ctx, t)
		if err != nil {
			return c, err
		}
		if err := b.lv.RefreshPool(ctx, pool); err != nil {
			return c, lv(err, "refresh pool %s", pool)
		}
		pi, err := b.lv.PoolInfo(ctx, pool)
		if err != nil {
			return c, lv(err, "pool %s", pool)
		}
		// libvirt's pool "available" is the file system's free blocks,
		// those reserved for root (ext4's 5 %, or more) included, which
		// QEMU (libvirt-qemu) cannot write: the free space reported is
		// the lower of it and what statfs says unprivileged users may
		// use, the figure the agent reports without libvirtd (hostinfo).
		free := pi.Available >> 30
		if hc, _ := b.host.Capacity(map[string]string{t: b.poolPath(t)}); len(hc.Storage) == 1 {
			free = min(free, hc.Storage[0].FreeGB)
		}
		c.Storage = append(c.Storage, api.StorageCapacity{Type: t, TotalGB: pi.Capacity >> 30, FreeGB: free})
	}
	return c, nil
}

// Collector exports per-domain metrics in base units, named after the
// community libvirt exporter: CPU seconds, memory bytes, block and
// network bytes, and the domain state. Only the builder's domains (by name
// prefix) are exported; a failed scrape sets regent_vm_libvirt_up to 0.
// Over a *Conn it also exports regent_agent_libvirt_reconnects_total.
type Collector struct {
	b       *Builder
	timeout time.Duration

	// lastErr is the last scrape's libvirt error ("" when it worked): a
	// failure is logged when it changes, not at every scrape.
	mu      sync.Mutex
	lastErr string

	reconnects                          *prometheus.Desc
	up, state, cpu, mem, rd, wr, rx, tx *prometheus.Desc
}

// reconnecter is a libvirt connection that counts its reconnects (*Conn).
type reconnecter interface{ Reconnects() uint64 }

// Collector returns the builder's prometheus.Collector.
func (b *Builder) Collector() *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"domain"}, labels...), nil)
	}
	return &Collector{
		b: b, timeout: 5 * time.Second,
		reconnects: prometheus.NewDesc("regent_agent_libvirt_reconnects_total",
			"Times the agent dialed libvirtd again after losing its connection (libvirtd restarted).", nil, nil),
		up:    prometheus.NewDesc("regent_vm_libvirt_up", "Whether the last scrape of libvirt succeeded.", nil, nil),
		state: d("regent_vm_domain_state", "libvirt domain state (virDomainState: 1 running, 3 paused, 5 shut off)."),
		cpu:   d("regent_vm_cpu_seconds_total", "CPU time used by the domain."),
		mem:   d("regent_vm_memory_bytes", "Memory currently assigned to the domain (balloon)."),
		rd:    d("regent_vm_block_read_bytes_total", "Bytes read from a disk.", "device"),
		wr:    d("regent_vm_block_write_bytes_total", "Bytes written to a disk.", "device"),
		rx:    d("regent_vm_network_receive_bytes_total", "Bytes received on an interface.", "device"),
		tx:    d("regent_vm_network_transmit_bytes_total", "Bytes transmitted on an interface.", "device"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.reconnects, c.up, c.state, c.cpu, c.mem, c.rd, c.wr, c.rx, c.tx} {
		ch <- d
	}
}

// logChange logs a scrape's failure when it differs from the last one,
// and the first scrape that works after failures (regent_vm_libvirt_up
// says it at every scrape).
func (c *Collector) logChange(err error) {
	now := ""
	if err != nil {
		now = err.Error()
	}
	c.mu.Lock()
	was := c.lastErr
	c.lastErr = now
	c.mu.Unlock()
	switch {
	case now == was:
	case now != "":
		c.b.log.Warn("domain stats (regent_vm_libvirt_up 0; logged again when this changes)", "error", err)
	case was != "":
		c.b.log.Info("domain stats work again")
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if r, ok := c.b.lv.(reconnecter); ok {
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(r.Reconnects()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	stats, err := c.b.lv.DomainStats(ctx)
	c.logChange(err)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, s := range stats {
		if !strings.HasPrefix(s.Name, c.b.cfg.NamePrefix) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(s.State), s.Name)
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, s.CPUSeconds, s.Name)
		ch <- prometheus.MustNewConstMetric(c.mem, prometheus.GaugeValue, float64(s.MemoryBytes), s.Name)
		for _, bl := range s.Block {
			ch <- prometheus.MustNewConstMetric(c.rd, prometheus.CounterValue, float64(bl.ReadBytes), s.Name, bl.Device)
			ch <- prometheus.MustNewConstMetric(c.wr, prometheus.CounterValue, float64(bl.WriteBytes), s.Name, bl.Device)
		}
		for _, n := range s.Net {
			ch <- prometheus.MustNewConstMetric(c.rx, prometheus.CounterValue, float64(n.RxBytes), s.Name, n.Device)
			ch <- prometheus.MustNewConstMetric(c.tx, prometheus.CounterValue, float64(n.TxBytes), s.Name, n.Device)
		}
	}
}

var _ prometheus.Collector = (*Collector)(nil)
