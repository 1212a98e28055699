package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/atomicfile"
)

// The network role saves what its routers' metadata services answer from
// (metadataCacheFile in data_dir) each time a work fetch changes it, and
// serves it at start-up until the first work fetch succeeds: an agent
// restarted while the controllers are unreachable otherwise serves no
// metadata (its servers die with the process; the routers stay up), and a
// VM that boots meanwhile fails its cloud-init. The copy only serves
// metadata: nothing is built or removed from it, and the first fetched
// work replaces it.

// metadataCacheFile is the saved copy, in data_dir (mode 0600: metadata
// holds user data and SSH keys).
const metadataCacheFile = "router-metadata.json"

// metadataCacheVersion is the format of the file; a file of another
// version is ignored (and replaced at the next fetch).
const metadataCacheVersion = 1

// metadataCache is the file's content.
type metadataCache struct {
	Version int       `json:"version"`
	Saved   time.Time `json:"saved"`
	// Routers are the routers of the work whose metadata the agent
	// served (metadataRouters), each with only what the metadata service
	// reads: no NAT, firewall, DHCP or VPN (no pre-shared keys).
	Routers []api.RouterSpec `json:"routers"`
}

// metadataServing is what the daemon needs of the router builder for the
// saved copy (netrouter.Builder).
type metadataServing interface {
	ServeMetadata(ctx context.Context, spec *api.RouterSpec) error
	ReplaceMetadata(ctx context.Context, fresh []api.RouterSpec) int
}

// metadataRouters are the routers of a work listing whose metadata
// services run (their state asks the agent to keep them up: actEnsure),
// trimmed to what the metadata service reads.
func metadataRouters(rs []api.RouterSpec) []api.RouterSpec {
	out := []api.RouterSpec{}
	for _, r := range rs {
		if p, ok := statePlans[r.State]; !ok || p.act != actEnsure {
			continue
		}
		t := api.RouterSpec{ID: r.ID, ProjectID: r.ProjectID, State: r.State, Generation: r.Generation, Metadata: r.Metadata}
		for _, s := range r.Subnets {
			t.Subnets = append(t.Subnets, api.RouterSubnetSpec{ID: s.ID, AddressRange: s.AddressRange, DNS: s.DNS})
		}
		out = append(out, t)
	}
	return out
}

func (d *Daemon) metadataCachePath() string { return filepath.Join(d.cfg.DataDir, metadataCacheFile) }

// serveSavedMetadata serves the saved copy's metadata at start-up, before
// the first work fetch. A missing file is a first start; a file that
// cannot be read or is of another version is logged and ignored.
func (d *Daemon) serveSavedMetadata(ctx context.Context) {
	if d.metaServing == nil {
		return
	}
	path := d.metadataCachePath()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return
	}
	var c metadataCache
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil && c.Version != metadataCacheVersion {
		err = fmt.Errorf("format version %d, this agent reads %d", c.Version, metadataCacheVersion)
	}
	if err != nil {
		d.log.Warn("ignoring the saved copy of the routers' metadata: VMs get none until the first work fetch (the next fetch replaces the file)",
			"file", path, "error", err)
		return
	}
	served := 0
	for i := range c.Routers {
		r := &c.Routers[i]
		if err := d.metaServing.ServeMetadata(ctx, r); err != nil {
			d.log.Warn("not serving the saved metadata of a router", "router", r.ID, "error", err)
			continue
		}
		served++
	}
	if served == 0 {
		return
	}
	d.metaFromCache = true
	d.metrics.metadataFromCache.Set(1)
	d.log.Warn("serving the routers' metadata from the saved copy of the last work until the first work fetch",
		"routers", served, "saved", c.Saved.Format(time.RFC3339), "file", path)
}

// workFetched saves the metadata of a fetched work listing when it
// changed, and the first time ends serving the saved copy.
func (d *Daemon) workFetched(ctx context.Context, w *api.Work) {
	if d.metaServing == nil {
		return
	}
	routers := metadataRouters(w.Routers)
	if d.metaFromCache {
		d.metaFromCache = false
		stopped := d.metaServing.ReplaceMetadata(ctx, routers)
		d.metrics.metadataFromCache.Set(0)
		d.log.Info("metadata from the fetched work now, not the saved copy", "routers_no_longer_served", stopped)
	}
	body, err := json.Marshal(routers)
	if err != nil || bytes.Equal(body, d.metaSaved) {
		return
	}
	data, err := json.MarshalIndent(metadataCache{Version: metadataCacheVersion, Saved: time.Now().UTC(), Routers: routers}, "", " ")
	if err == nil {
		err = atomicfile.Write(d.metadataCachePath(), data, 0o600)
	}
	if err != nil {
		if !d.metaSaveFailing {
			d.log.Warn("cannot save the routers' metadata (an agent restarted while the controllers are unreachable serves none); retrying at the next fetch",
				"file", d.metadataCachePath(), "error", err)
		}
		d.metaSaveFailing = true
		return
	}
	if d.metaSaveFailing {
		d.log.Info("the routers' metadata is saved again", "file", d.metadataCachePath())
	}
	d.metaSaveFailing = false
	d.metaSaved = body
}
