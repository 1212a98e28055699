package vpn

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/strongswan/govici/vici"
)

// ikeSA is one IKE SA of list-sas.
type ikeSA struct {
	name        string
	uniqueID    string
	version     int
	state       string
	localHost   string
	remoteHost  string
	established int64
	children    []api.VPNChildStatus
}

// listSAs reads the IKE SAs of one connection ("" for all).
func listSAs(ctx context.Context, sess session, ike string) ([]ikeSA, error) {
	m := vici.NewMessage()
	if ike != "" {
		_ = m.Set("ike", ike)
	}
	var out []ikeSA
	for ev, err := range sess.CallStreaming(ctx, "list-sas", "list-sa", m) {
		if err != nil {
			return nil, fmt.Errorf("list-sas: %w", err)
		}
		if ev == nil {
			continue
		}
		out = append(out, parseSAs(ev)...)
	}
	return out, nil
}

// parseSAs reads one list-sa event: {<conn name> {uniqueid, state, …,
// child-sas {<name-id> {name, state, …}}}}.
func parseSAs(ev *vici.Message) []ikeSA {
	var out []ikeSA
	for _, name := range ev.Keys() {
		sec, ok := ev.Get(name).(*vici.Message)
		if !ok {
			continue
		}
		sa := ikeSA{name: name, uniqueID: str(sec, "uniqueid"), state: str(sec, "state"),
			localHost: str(sec, "local-host"), remoteHost: str(sec, "remote-host")}
		sa.version, _ = strconv.Atoi(str(sec, "version"))
		sa.established, _ = strconv.ParseInt(str(sec, "established"), 10, 64)
		if cs, ok := sec.Get("child-sas").(*vici.Message); ok {
			for _, k := range cs.Keys() {
				c, ok := cs.Get(k).(*vici.Message)
				if !ok {
					continue
				}
				sa.children = append(sa.children, api.VPNChildStatus{
					Name: str(c, "name"), State: str(c, "state"),
					LocalTS: list(c, "local-ts"), RemoteTS: list(c, "remote-ts"),
					BytesIn: num(c, "bytes-in"), BytesOut: num(c, "bytes-out"),
					PacketsIn: num(c, "packets-in"), PacketsOut: num(c, "packets-out"),
				})
			}
		}
		slices.SortFunc(sa.children, func(a, b api.VPNChildStatus) int {
			if a.Name < b.Name {
				return -1
			} else if a.Name > b.Name {
				return 1
			}
			return 0
		})
		out = append(out, sa)
	}
	return out
}

func str(m *vici.Message, k string) string {
	s, _ := m.Get(k).(string)
	return s
}

func list(m *vici.Message, k string) []string {
	l, _ := m.Get(k).([]string)
	if l == nil {
		return []string{}
	}
	return l
}

func num(m *vici.Message, k string) uint64 {
	n, _ := strconv.ParseUint(str(m, k), 10, 64)
	return n
}

// stateRank orders IKE states for picking the one to report when a
// connection has several SAs (a rekey, a collision).
func stateRank(s string) int {
	switch s {
	case "ESTABLISHED":
		return 0
	case "REKEYING", "REKEYED":
		return 1
	case "CONNECTING":
		return 2
	}
	return 3
}

// status reads the state of every wanted VPN of the instance.
func (in *instance) status(ctx context.Context) []api.VPNStatus {
	in.stMu.Lock()
	defer in.stMu.Unlock()
	snap := in.snap
	now := time.Now().UTC().Format(time.RFC3339)
	out := make([]api.VPNStatus, 0, len(snap.want))
	var sas []ikeSA
	var err error
	if !snap.running || in.stSess == nil {
		err = fmt.Errorf("charon is not running")
	} else {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sas, err = listSAs(cctx, in.stSess, "")
		cancel()
	}
	for _, r := range snap.want {
		st := api.VPNStatus{VPNID: r.conn.VPNID, VirtualRouterID: snap.router.ID, Time: now, IKEState: api.VPNStateDown,
			Children: []api.VPNChildStatus{}}
		switch {
		case err != nil:
			st.Error = err.Error()
		case snap.loaded[r.conn.VPNID] != r.digest:
			st.Error = "not loaded"
		default:
			st.Error = snap.initErr[r.conn.VPNID]
		}
		best := -1
		for i, sa := range sas {
			if sa.name != r.conn.Name {
				continue
			}
			if best < 0 || stateRank(sa.state) < stateRank(sas[best].state) ||
				(stateRank(sa.state) == stateRank(sas[best].state) && len(sa.children) > len(sas[best].children)) {
				best = i
			}
		}
		if best >= 0 {
			sa := sas[best]
			st.IKEState, st.IKEVersion, st.LocalHost, st.RemoteHost, st.Established = sa.state, sa.version, sa.localHost, sa.remoteHost, sa.established
			if sa.children != nil {
				st.Children = sa.children
			}
			if sa.state == "ESTABLISHED" {
				st.Error = ""
			}
		}
		if rf, ok := snap.refused[r.conn.VPNID]; ok && rf.digest == r.digest {
			st.Error = rf.err.Error() // whatever still runs, this spec does not
		}
		out = append(out, st)
	}
	return out
}
