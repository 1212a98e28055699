package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regentcloud/regent/agent/netrouter"
	"github.com/regentcloud/regent/pkg/api"
)

// kindSegment labels the hypervisor's segment reconciles in the metrics.
const kindSegment = "segment"

// segmentEnsurer is what the hypervisor role needs of netrouter.Segments.
type segmentEnsurer interface {
	Ensure(ctx context.Context, segs []netrouter.Segment) (netrouter.Result, error)
}

// segmentsOf returns the segments the NICs of vms are on: one per NIC of
// every VM that is not CLOSED (a VM in any other state may run, or be
// about to), with the NIC's VTEPs. netrouter.Segments merges the
// segments of one VNI.
func segmentsOf(vms []api.VMSpec) []netrouter.Segment {
	out := []netrouter.Segment{}
	for _, vm := range vms {
		if vm.State == api.StateClosed {
			continue
		}
		for _, n := range vm.NICs {
			out = append(out, netrouter.Segment{VNI: n.VNI, VLAN: n.VLAN, VTEPs: slices.Clone(n.VTEPs)})
		}
	}
	slices.SortFunc(out, func(a, b netrouter.Segment) int {
		if a.VNI != b.VNI {
			return cmpU32(a.VNI, b.VNI)
		}
		if a.VLAN != b.VLAN {
			return cmpU32(a.VLAN, b.VLAN)
		}
		return strings.Compare(strings.Join(a.VTEPs, ","), strings.Join(b.VTEPs, ","))
	})
	return out
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sameSegments(a, b []netrouter.Segment) bool {
	return slices.EqualFunc(a, b, func(x, y netrouter.Segment) bool {
		return x.VNI == y.VNI && x.VLAN == y.VLAN && slices.Equal(x.VTEPs, y.VTEPs)
	})
}

// wantSegments hands the segment loop the segments of a complete work
// answer; only the latest matters.
func (d *Daemon) wantSegments(segs []netrouter.Segment) {
	select {
	case <-d.segWant:
	default:
	}
	d.segWant <- segs
}

// segmentLoop keeps the hypervisor's segments equal to the latest wanted
// set: it applies a new set at once, retries a failure with backoff and
// applies the set again every resync interval (drift repair). An invalid
// segment is logged and skipped until the work changes.
func (d *Daemon) segmentLoop(ctx context.Context, s segmentEnsurer) {
	log := d.log.Named("segments")
	resync := time.NewTicker(d.cfg.ResyncDuration())
	defer resync.Stop()
	bo := backoff{min: d.minRetry, max: d.maxRetry}
	var (
		want, applied []netrouter.Segment
		have, ok      bool
		retry         <-chan time.Time
	)
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case want = <-d.segWant:
			have = true
		case <-resync.C:
			force = true
		case <-retry:
			force = true
		}
		if !have || (!force && ok && sameSegments(want, applied)) {
			continue
		}
		retry = nil
		res, err := s.Ensure(ctx, want)
		if ctx.Err() != nil {
			return
		}
		if len(res.Changes) > 0 {
			d.metrics.built(kindSegment, "ensure", res.Duration)
			// netrouter logs the changes ("segments reconciled") at info.
			log.Debug("segments ensured", "segments", len(want), "took", res.Duration, "changes", len(res.Changes))
		}
		switch {
		case err == nil:
			d.metrics.reconciled(kindSegment, resultOK)
			bo.reset()
			applied, ok = want, true
		case isOnlyInvalid(err):
			d.metrics.reconciled(kindSegment, resultInvalid)
			log.Error("invalid VM segments skipped until the work changes", "error", err)
			bo.reset()
			applied, ok = want, true
		default:
			d.metrics.reconciled(kindSegment, resultError)
			wait := bo.next()
			log.Warn(fmt.Sprintf("ensuring segments failed, retrying in %s", wait), "error", err)
			applied, ok = nil, false
			retry = time.After(wait)
		}
	}
}

// isOnlyInvalid reports whether every error joined in err is an
// *InvalidSegmentsError (nothing worth a retry).
func isOnlyInvalid(err error) bool {
	var ie *netrouter.InvalidSegmentsError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !errors.As(e, &ie) {
				return false
			}
		}
		return true
	}
	return errors.As(err, &ie)
}
