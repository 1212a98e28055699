package dns

import (
	"context"
	"fmt"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// notifyAttempts is the number of NOTIFY sends per change and target
// (one try and up to three retries, backing off 1s, 2s, 4s).
const notifyAttempts = 4

type notifyKey struct{ zone, target string }

// notifier sends NOTIFY to the configured secondaries. Each (zone, target)
// pair has at most one sender goroutine; changes arriving while it is busy
// coalesce into one more NOTIFY for the newest serial. Senders are owned by
// the server (its WaitGroup) and stop with its context.
type notifier struct {
	ctx     context.Context
	s       *Server
	mu      sync.Mutex
	pending map[notifyKey]*zone
	running map[notifyKey]bool
}

func newNotifier(ctx context.Context, s *Server) *notifier {
	return &notifier{ctx: ctx, s: s, pending: map[notifyKey]*zone{}, running: map[notifyKey]bool{}}
}

func (n *notifier) enqueue(z *zone) {
	if n.ctx.Err() != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, t := range n.s.cfg.notifyAddrs {
		k := notifyKey{z.name, t}
		n.pending[k] = z
		if !n.running[k] {
			n.running[k] = true
			n.s.wg.Go(func() { n.run(k) })
		}
	}
}

func (n *notifier) run(k notifyKey) {
	for {
		n.mu.Lock()
		z, ok := n.pending[k]
		delete(n.pending, k)
		if !ok || n.ctx.Err() != nil {
			delete(n.running, k)
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		err := n.send(z, k.target)
		if err != nil {
			n.s.metrics.notified(resultFailure)
			if n.ctx.Err() == nil {
				n.s.log.Warn("NOTIFY failed", "zone", z.name, "serial", z.serial, "target", k.target, "error", err)
			}
		} else {
			n.s.metrics.notified(resultSuccess)
			n.s.log.Debug("NOTIFY acknowledged", "zone", z.name, "serial", z.serial, "target", k.target)
		}
	}
}

// send delivers one NOTIFY with retries.
func (n *notifier) send(z *zone, target string) error {
	cfg := n.s.cfg
	c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
	if cfg.tsigSecrets != nil {
		c.TsigSecret = cfg.tsigSecrets
	}
	backoff := cfg.notifyBackoff
	var err error
	for attempt := range notifyAttempts {
		if attempt > 0 {
			select {
			case <-n.ctx.Done():
				return n.ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		m := new(mdns.Msg).SetNotify(z.name)
		m.Answer = []mdns.RR{z.soa}
		if cfg.tsigSecrets != nil {
			m.SetTsig(cfg.NotifyKey, cfg.TSIGAlgorithm, 300, time.Now().Unix())
		}
		var r *mdns.Msg
		r, _, err = c.ExchangeContext(n.ctx, m, target)
		if err != nil {
			continue
		}
		if r.Rcode != mdns.RcodeSuccess || r.Opcode != mdns.OpcodeNotify {
			err = fmt.Errorf("answered %s", mdns.RcodeToString[r.Rcode])
			continue
		}
		return nil
	}
	return err
}
