package state

import (
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
)

// AgentRegistration is an agent's registration as the API hands it to the
// state machine: the robot token's region and (when bound) server, and
// what the agent reported.
type AgentRegistration struct {
	RegionID uint64                `json:"region_id"`
	ServerID uint64                `json:"server_id,omitempty"`
	Agent    api.AgentRegistration `json:"agent"`
	// AgentID is the registering agent's instance id (its
	// X-Regent-Agent-Id; "" for an older agent), stored on the records.
	AgentID string `json:"agent_id,omitempty"`
}

func hasRole(roles []string, r string) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// AgentRegister creates or updates the Server (hypervisor role) and Router
// (network role) an agent acts for, in one transaction. A server is found
// by the token's binding, else by hostname (or asset tag) in the region;
// a new one is a KVM server whose storage type is the first the agent
// reports. A new router is created disabled: an operator gives it
// floating subnets and enables it. Reported interfaces replace the
// server's.
func (t *Txn) AgentRegister(p *AgentRegistration) (*api.AgentRegistered, error) {
	a := p.Agent
	if _, ok := t.Region(p.RegionID); !ok {
		return nil, api.Errorf(http.StatusBadRequest, "agent_register_101", "Region %d of the robot token does not exist.", p.RegionID)
	}
	out := &api.AgentRegistered{}
	if hasRole(a.Roles, api.RoleHypervisor) {
		s, err := t.agentServer(p)
		if err != nil {
			return nil, err
		}
		out.ServerID = s.ID
	}
	if hasRole(a.Roles, api.RoleNetwork) {
		cur := t.agentRouter(p)
		var err error
		if cur == nil {
			cur, err = t.RouterCreate(&api.Router{RegionID: p.RegionID, Capacity: new(int), AssetTag: a.Hostname,
				Hostname: a.Hostname, VTEP: a.VTEP, AgentVersion: a.Version, AgentID: p.AgentID, Status: api.AgentUp})
		} else {
			n := *cur
			n.Hostname, n.VTEP, n.AgentVersion, n.AgentID, n.Status = a.Hostname, a.VTEP, a.Version, p.AgentID, api.AgentUp
			cur, err = t.RouterUpdate(&n, 0)
		}
		if err != nil {
			return nil, err
		}
		out.RouterID = cur.ID
	}
	return out, nil
}

// AgentTargets returns the server (hypervisor role) and router (network
// role) a registration would update, found as AgentRegister finds them: 0
// for a role the agent does not have or a record it would create. It
// checks nothing (AgentRegister does).
func (r *ReadTxn) AgentTargets(p *AgentRegistration) (server, router uint64) {
	if hasRole(p.Agent.Roles, api.RoleHypervisor) {
		if p.ServerID != 0 {
			if s, ok := r.Server(p.ServerID); ok && s.RegionID == p.RegionID {
				server = s.ID
			}
		} else if s := r.agentServerByHost(p); s != nil {
			server = s.ID
		}
	}
	if hasRole(p.Agent.Roles, api.RoleNetwork) {
		if rt := r.agentRouter(p); rt != nil {
			router = rt.ID
		}
	}
	return server, router
}

// agentServerByHost is the server of the registration's region with its
// hostname (or, without a hostname, that asset tag); nil when none.
func (r *ReadTxn) agentServerByHost(p *AgentRegistration) *api.Server {
	for _, s := range r.ServersInRegion(p.RegionID) {
		if strings.EqualFold(s.Hostname, p.Agent.Hostname) || (s.Hostname == "" && strings.EqualFold(s.AssetTag, p.Agent.Hostname)) {
			return s
		}
	}
	return nil
}

// agentRouter is the router of the registration's region with its
// hostname (or, without a hostname, that asset tag); nil when none.
func (r *ReadTxn) agentRouter(p *AgentRegistration) *api.Router {
	for _, rt := range r.RoutersInRegion(p.RegionID) {
		if strings.EqualFold(rt.Hostname, p.Agent.Hostname) || (rt.Hostname == "" && strings.EqualFold(rt.AssetTag, p.Agent.Hostname)) {
			return rt
		}
	}
	return nil
}

func (t *Txn) agentServer(p *AgentRegistration) (*api.Server, error) {
	a := p.Agent
	var cur *api.Server
	if p.ServerID != 0 {
		s, ok := t.Server(p.ServerID)
		if !ok || s.RegionID != p.RegionID {
			return nil, api.Errorf(http.StatusBadRequest, "agent_register_102", "Server %d of the robot token does not exist in region %d.", p.ServerID, p.RegionID)
		}
		cur = s
	} else {
		cur = t.agentServerByHost(p)
	}
	if len(a.Capacity.Storage) == 0 {
		return nil, fieldErr("capacity", "agent_register_103", "A hypervisor must report at least one storage type.")
	}
	st, gb := t.storageTypeByName(a.Capacity.Storage[0].Type), 0
	if st == nil {
		return nil, fieldErr("capacity", "agent_register_104", "Storage type %q does not exist; create it with POST /iaas/storage_type/ first.", a.Capacity.Storage[0].Type)
	}
	for _, s := range a.Capacity.Storage {
		if strings.EqualFold(s.Type, st.Name) {
			gb += int(s.TotalGB)
		}
	}
	s := &api.Server{RegionID: p.RegionID, TypeID: api.ServerTypeKVM, Enabled: true, AssetTag: a.Hostname}
	if cur != nil {
		c := *cur
		s = &c
	}
	s.StorageTypeID = st.ID
	s.Cores, s.RAM, s.GB = max(a.Capacity.CPUCores, 1), max(int(a.Capacity.RAMMB/1024), 1), max(gb, 1)
	s.Hostname, s.VTEP, s.AgentVersion, s.AgentID, s.Status = a.Hostname, a.VTEP, a.Version, p.AgentID, api.AgentUp
	var err error
	if cur == nil {
		s, err = t.ServerCreate(s)
	} else {
		s, err = t.ServerUpdate(s, 0)
	}
	if err != nil {
		return nil, err
	}
	// the reported interfaces replace the server's
	for _, i := range t.InterfacesOfServer(s.ID) {
		if err := t.ServerInterfaceDelete(i.ID); err != nil {
			return nil, err
		}
	}
	// By name; from Rules8 interfaces of one name (the API does not refuse
	// them) in the order reported: a stable sort, so that the ids they get
	// do not depend on the sort algorithm of the Go release a node runs.
	ifs := append([]api.AgentInterface(nil), a.Interfaces...)
	if t.since(Rules8) {
		slices.SortStableFunc(ifs, func(x, y api.AgentInterface) int { return strings.Compare(x.Name, y.Name) })
	} else {
		sort.Slice(ifs, func(i, j int) bool { return ifs[i].Name < ifs[j].Name })
	}
	for _, i := range ifs {
		addr := ""
		if len(i.Addresses) > 0 {
			addr = i.Addresses[0]
		}
		if _, err := t.ServerInterfaceCreate(&api.ServerInterface{ServerID: s.ID, Hostname: a.Hostname, IPAddress: addr,
			MACAddress: i.MAC, Enabled: i.Up, Details: i.Name}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (r *ReadTxn) storageTypeByName(name string) *api.StorageType {
	for _, st := range r.StorageTypeList() {
		if strings.EqualFold(st.Name, name) {
			return st
		}
	}
	return nil
}

// AgentStatus is the leader's verdict on agents from their heartbeats:
// each listed server and router takes Status, and a server with Capacity
// takes its cores, RAM and disk.
type AgentStatus struct {
	Servers  map[uint64]string       `json:"servers,omitempty"`
	Routers  map[uint64]string       `json:"routers,omitempty"`
	Capacity map[uint64]api.Capacity `json:"capacity,omitempty"`
}

// SetAgentStatus applies an AgentStatus. Unknown ids are skipped: the
// object may have been deleted since the leader looked.
func (t *Txn) SetAgentStatus(p *AgentStatus) (any, error) {
	ids := func(m map[uint64]string) []uint64 {
		out := make([]uint64, 0, len(m))
		for id := range m {
			out = append(out, id)
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	servers := map[uint64]bool{}
	for id := range p.Servers {
		servers[id] = true
	}
	for id := range p.Capacity {
		servers[id] = true
	}
	sids := make([]uint64, 0, len(servers))
	for id := range servers {
		sids = append(sids, id)
	}
	sort.Slice(sids, func(i, j int) bool { return sids[i] < sids[j] })
	for _, id := range sids {
		s, ok := t.Server(id)
		if !ok {
			continue
		}
		n := *s
		if st, ok := p.Servers[id]; ok {
			n.Status = st
		}
		if c, ok := p.Capacity[id]; ok {
			n.Cores, n.RAM = max(c.CPUCores, 1), max(int(c.RAMMB/1024), 1)
			gb := 0
			if st, ok := t.StorageType(n.StorageTypeID); ok {
				for _, sc := range c.Storage {
					if strings.EqualFold(sc.Type, st.Name) {
						gb += int(sc.TotalGB)
					}
				}
			}
			if gb > 0 {
				n.GB = gb
			}
		}
		if _, err := t.ServerUpdate(&n, 0); err != nil {
			return nil, err
		}
	}
	for _, id := range ids(p.Routers) {
		r, ok := t.Router(id)
		if !ok {
			continue
		}
		n := *r
		n.Status = p.Routers[id]
		if _, err := t.RouterUpdate(&n, 0); err != nil {
			return nil, err
		}
	}
	return nil, nil
}
