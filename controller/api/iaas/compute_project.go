package iaas

// project, cloud, virtual_router, vm, vm_history and storage.
//
// Each write is one command; the checks that depend on state (placement,
// addresses, uniqueness, transitions) run inside Apply, so cloud create and
// update are atomic: any error leaves nothing behind.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

// projectShape checks a new project: 101 name missing, 102 name too long,
// 103 region missing or unknown, 104 not a customer of the region, 105
// negative grace period, 106 note too long; state adds 107 (name taken),
// 108 (no router has room) and 109 (no public address left).
func projectShape(fe wire.FieldErrors, q *api.Request, prefix, service string, in *wire.ProjectInput) *state.ProjectSpec {
	c := func(n int) string { return fmt.Sprintf("iaas_%s_create_%03d", service, n) }
	s := &state.ProjectSpec{MemberID: q.P.MemberID, GracePeriod: wire.ProjectDefaultGrace}
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		fe.Add(prefix+"name", c(101), "This field is required.")
	} else if s.Name = strings.TrimSpace(*in.Name); api.TextFault(s.Name, 100) != "" {
		fe.Add(prefix+"name", c(102), "%s", api.TextFault(s.Name, 100))
	}
	if in.RegionID == nil {
		fe.Add(prefix+"region_id", c(103), "This field is required.")
	} else if reg, ok := q.Txn.Region(*in.RegionID); !ok {
		fe.Add(prefix+"region_id", c(103), "Region %d does not exist.", *in.RegionID)
	} else if !q.P.Global() && !containsU64(reg.Customers, q.P.MemberID) {
		fe.Add(prefix+"region_id", c(104), "Your member is not a customer of region %d.", reg.ID)
	} else {
		s.RegionID = reg.ID
	}
	if in.GracePeriod != nil {
		if *in.GracePeriod < 0 {
			fe.Add(prefix+"grace_period", c(105), "grace_period must be ≥ 0 hours.")
		}
		s.GracePeriod = *in.GracePeriod
	}
	if in.Note != nil {
		noteBound(fe, prefix, c(106), *in.Note)
		s.Note = *in.Note
	}
	// absent or null: the caller; 0: none
	s.ManagerID = q.P.UserID
	api.Set(&s.ManagerID, in.ManagerID)
	return s
}

// noteBound refuses a project note over 10,000 characters or with a
// control character other than tabs and line ends (api.LinesFault), on
// create and update alike.
func noteBound(fe wire.FieldErrors, prefix, code, note string) {
	if msg := api.LinesFault(note, 10000); msg != "" {
		fe.Add(prefix+"note", code, "note: %s", msg)
	}
}

func containsU64(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ProjectUpdateInput is the body of a project update: its fields, or a
// state alone (8 deletes everything, 4 restores it).
type ProjectUpdateInput struct {
	wire.ProjectInput
	State json.RawMessage `json:"state"`
}

func registerProject(a *api.API) {
	api.Register(a, api.Service[*wire.Project]{
		App: App, Name: "project", Tables: []string{state.Projects, state.VirtualRouters, state.VMs},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String, "member_id": query.Number,
			"region_id": query.Number, "closed": query.Bool, "grace_period": query.Number, "manager_id": query.Number,
			"modified_by": query.Number}),
			Ordering:   []string{"name", "id", "region_id", "created", "updated"},
			ZeroIsNull: []string{"manager_id"}},
		All:     (*state.ReadTxn).ProjectList,
		Get:     (*state.ReadTxn).Project,
		Visible: func(q *api.Request, p *wire.Project) bool { return seesTenant(q, p.MemberID, p.RegionID) },
		Expand:  projectView,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.ProjectInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			s := projectShape(fe, q, "", "project", &in)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.ProjectCreateType, s)
		},
		Update: func(q *api.Request, cur *wire.Project, partial bool) (*fsm.Command, error) {
			var in ProjectUpdateInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.State != nil {
				if in.Name != nil || in.Note != nil || in.GracePeriod != nil || in.ManagerID != nil || in.RegionID != nil {
					return nil, wire.Errorf(http.StatusBadRequest, q.Code(110), "Change the state of a project alone.")
				}
				to, ok := parseState(fe, q, "state", in.State)
				if !ok {
					return nil, fe.Err()
				}
				return q.Command(fsm.StateChangeIfType, &state.StateChange{Kind: state.KindProject, ID: cur.ID, To: to})
			}
			p := *cur
			if in.RegionID != nil && *in.RegionID != cur.RegionID {
				fe.Add("region_id", q.Code(103), "A project cannot move to another region.")
			}
			if in.Name != nil {
				p.Name = strings.TrimSpace(*in.Name)
				if msg := nameFault(in.Name, 100); msg != "" {
					fe.Add("name", q.Code(102), "%s", msg)
				}
			} else if !partial {
				fe.Add("name", q.Code(101), "This field is required.")
			}
			if in.GracePeriod != nil {
				if *in.GracePeriod < 0 {
					fe.Add("grace_period", q.Code(105), "grace_period must be ≥ 0 hours.")
				}
				p.GracePeriod = *in.GracePeriod
			} else if !partial {
				p.GracePeriod = wire.ProjectDefaultGrace
			}
			if in.Note != nil || !partial {
				p.Note = ""
				api.Set(&p.Note, in.Note)
				noteBound(fe, "", q.Code(106), p.Note)
			}
			if in.ManagerID != nil || !partial {
				p.ManagerID = 0
				api.Set(&p.ManagerID, in.ManagerID)
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.ProjectUpdateType, &p)
		},
	})
}

// --- cloud ---

func cloudView(r *state.ReadTxn, p *wire.Project) any {
	v := wire.CloudView{Project: projectDetail(r, p), Subnets: subnetRefs(r, p), VMs: []wire.VMView{}}
	if vr, ok := r.VirtualRouter(p.VirtualRouterID); ok {
		d := vrDetail(r, vr)
		v.VirtualRouter = &d
	}
	for _, vm := range r.VMsOfProject(p.ID) {
		v.VMs = append(v.VMs, vmDetail(r, vm))
	}
	return v
}

var portRe = regexp.MustCompile(`^([0-9]{1,5})(?:-([0-9]{1,5}))?$`)

// rulesShape checks firewall rules (cloudcix-facts §5.10): 126 protocol
// not any/icmp/tcp/udp, 127 port missing or malformed for tcp/udp (N or
// N-M within 1–65535), or sent for another protocol, 128 pci_logging
// without allow, 129 source or destination missing, 130 description too
// long. State checks the sides against the project's subnets (121–125).
func rulesShape(fe wire.FieldErrors, q *api.Request, in []wire.RuleInput) []wire.FirewallRule {
	out := []wire.FirewallRule{}
	for i, r := range in {
		f := fmt.Sprintf("firewall_rules[%d].", i)
		rule := wire.FirewallRule{Order: i, Allow: r.Allow != nil && *r.Allow, Protocol: "any"}
		api.Set(&rule.Order, r.Order)
		if r.Protocol != nil {
			rule.Protocol = strings.ToLower(strings.TrimSpace(*r.Protocol))
		}
		switch rule.Protocol {
		case "any", "icmp", "tcp", "udp":
		default:
			fe.Add(f+"protocol", q.Code(126), "protocol must be any, icmp, tcp or udp.")
		}
		if r.Port != nil {
			rule.Port = strings.TrimSpace(*r.Port)
		}
		if rule.Protocol == "tcp" || rule.Protocol == "udp" {
			m := portRe.FindStringSubmatch(rule.Port)
			ok := m != nil
			if ok {
				lo, _ := strconv.Atoi(m[1])
				hi := lo
				if m[2] != "" {
					hi, _ = strconv.Atoi(m[2])
				}
				ok = lo >= 1 && hi <= 65535 && lo <= hi
			}
			if !ok {
				fe.Add(f+"port", q.Code(127), "port must be N or N-M within 1–65535 for %s.", rule.Protocol)
			}
		} else if rule.Port != "" {
			fe.Add(f+"port", q.Code(127), "port is only allowed for tcp and udp.")
		}
		rule.PCILogging = r.PCILogging != nil && *r.PCILogging
		rule.DebugLogging = r.DebugLogging != nil && *r.DebugLogging
		if rule.PCILogging && !rule.Allow {
			fe.Add(f+"pci_logging", q.Code(128), "pci_logging is only allowed on allow rules.")
		}
		if r.Source == nil || r.Destination == nil {
			fe.Add(f+"source", q.Code(129), "source and destination are required.")
		} else {
			rule.Source, rule.Destination = strings.TrimSpace(*r.Source), strings.TrimSpace(*r.Destination)
		}
		if r.Description != nil {
			if msg := api.TextFault(*r.Description, 255); msg != "" {
				fe.Add(f+"description", q.Code(130), "%s", msg)
			}
			rule.Description = *r.Description
		}
		out = append(out, rule)
	}
	return out
}

// subnetsShape checks the subnets of a cloud body, or of a virtual router
// update, which takes them in the same shape and reports the codes of
// cloud update (code is the cloud method's code maker).
func subnetsShape(fe wire.FieldErrors, code func(int) string, in []wire.SubnetSpecInput, update bool) []state.SubnetSpec {
	var out []state.SubnetSpec
	seen := map[uint64]bool{}
	for i, s := range in {
		f := fmt.Sprintf("subnets[%d].", i)
		spec := state.SubnetSpec{}
		api.Set(&spec.ID, s.ID)
		if spec.ID != 0 && update && seen[spec.ID] {
			fe.Add(f+"id", code(134), "Subnet %d is listed twice.", spec.ID)
		}
		seen[spec.ID] = true
		if msg := nameFault(s.Name, 128); msg != "" {
			fe.Add(f+"name", code(110), "%s", msg)
		} else {
			spec.Name = strings.TrimSpace(*s.Name)
		}
		if s.AddressRange != nil {
			spec.AddressRange = strings.TrimSpace(*s.AddressRange)
		} else if spec.ID == 0 {
			fe.Add(f+"address_range", code(113), "This field is required.")
		}
		if spec.ID != 0 && !update {
			fe.Add(f+"id", code(111), "A cloud create makes new subnets; id is not allowed.")
		}
		out = append(out, spec)
	}
	return out
}

func registerCloud(a *api.API) {
	api.Register(a, api.Service[*wire.Project]{
		App: App, Name: "cloud", NoList: true, Tables: state.ComputeTables,
		Get:     (*state.ReadTxn).Project,
		All:     (*state.ReadTxn).ProjectList,
		Visible: func(q *api.Request, p *wire.Project) bool { return seesTenant(q, p.MemberID, p.RegionID) },
		Expand:  cloudView,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.CloudInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			spec := &state.CloudSpec{Placement: q.API.Placement()}
			if in.Project == nil {
				fe.Add("project", q.Code(101), "This field is required.")
			} else {
				spec.Project = projectShape(fe, q, "project.", "cloud", in.Project)
			}
			spec.Subnets = subnetsShape(fe, q.Code, in.Subnets, false)
			for i := range in.VMs {
				if in.VMs[i].ID != nil || in.VMs[i].ProjectID != nil {
					fe.Add(fmt.Sprintf("vms[%d].id", i), q.Code(118), "A cloud create makes new VMs; id and project_id are not allowed.")
					continue
				}
				vs := vmShape(fe, fmt.Sprintf("vms[%d].", i), &in.VMs[i])
				if spec.Project != nil {
					vmPrecheck(fe, q, fmt.Sprintf("vms[%d].", i), &vs, spec.Project.RegionID)
				}
				spec.VMs = append(spec.VMs, vs)
			}
			rules := []wire.FirewallRule{}
			if in.FirewallRules != nil {
				rules = rulesShape(fe, q, *in.FirewallRules)
			}
			spec.FirewallRules = &rules
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.CloudCreateType, spec)
		},
		Update: func(q *api.Request, cur *wire.Project, _ bool) (*fsm.Command, error) {
			var in wire.CloudInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.Project != nil {
				fe.Add("project", q.Code(103), "Change the project itself through /iaas/project/.")
			}
			spec := &state.CloudSpec{ProjectID: cur.ID, Placement: q.API.Placement()}
			spec.Subnets = subnetsShape(fe, q.Code, in.Subnets, true)
			seen := map[uint64]bool{}
			for i := range in.VMs {
				v := &in.VMs[i]
				if v.ID != nil && seen[*v.ID] {
					fe.Add(fmt.Sprintf("vms[%d].id", i), q.Code(134), "VM %d is listed twice.", *v.ID)
					continue
				}
				if v.ID != nil {
					seen[*v.ID] = true
					// An existing VM: cpu, ram and storages may change.
					if v.ProjectID != nil || v.Name != nil || v.ImageID != nil || v.StorageTypeID != nil || v.GPU != nil || v.DNS != nil ||
						v.PublicKey != nil || v.GatewaySubnet != nil || v.IPAddresses != nil || v.Userdata != nil {
						fe.Add(fmt.Sprintf("vms[%d].id", i), q.Code(119), "Only cpu, ram and storages of an existing VM change through cloud update.")
						continue
					}
					s := state.VMSpec{ID: *v.ID}
					vm, ok := q.Txn.VM(*v.ID)
					if !ok || vm.ProjectID != cur.ID {
						fe.Add(fmt.Sprintf("vms[%d].id", i), q.Code(118), "VM %d is not a VM of this project.", *v.ID)
						continue
					}
					s.CPU, s.RAM = vm.CPU, vm.RAM
					api.Set(&s.CPU, v.CPU)
					api.Set(&s.RAM, v.RAM)
					if s.CPU < 1 || s.RAM < 1 || s.CPU > wire.MaxCores || s.RAM > wire.MaxRAMGB {
						fe.Add(fmt.Sprintf("vms[%d].cpu", i), "iaas_vm_update_117", "cpu must be an integer from 1 to %d and ram from 1 to %d.", wire.MaxCores, wire.MaxRAMGB)
					}
					s.Storages = storageChanges(fe, fmt.Sprintf("vms[%d].storages", i), "iaas_vm_update_113", v.Storages)
					spec.VMs = append(spec.VMs, s)
					continue
				}
				vs := vmShape(fe, fmt.Sprintf("vms[%d].", i), v)
				vmPrecheck(fe, q, fmt.Sprintf("vms[%d].", i), &vs, cur.RegionID)
				spec.VMs = append(spec.VMs, vs)
			}
			if in.FirewallRules != nil {
				rules := rulesShape(fe, q, *in.FirewallRules)
				spec.FirewallRules = &rules
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.CloudUpdateType, spec)
		},
	})
}

// --- virtual router ---

// VRUpdateInput is the body of a virtual router update: a state change
// (as StateInput) or its subnets, as CloudCIX's virtual router update
// takes them ({id?, name, address_range}, the shape of cloud's subnets),
// not both at once.
type VRUpdateInput struct {
	StateInput
	Subnets *[]wire.SubnetSpecInput `json:"subnets"`
}

func registerVirtualRouter(a *api.API, opts Options) {
	api.Register(a, api.Service[*wire.VirtualRouter]{
		App: App, Name: "virtual_router", Tables: []string{state.VirtualRouters, state.IPBlocks},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"project_id": query.Number, "member_id": query.Number,
			"region_id": query.Number, "router_id": query.Number, "state": query.Number, "ip_address": query.CIDR,
			"generation": query.Number, "observed_generation": query.Number}),
			Ordering: []string{"id", "project_id", "state", "ip_address", "created", "updated"}},
		All:     (*state.ReadTxn).VirtualRouterList,
		Get:     (*state.ReadTxn).VirtualRouter,
		Visible: func(q *api.Request, v *wire.VirtualRouter) bool { return seesTenant(q, v.MemberID, v.RegionID) },
		Expand:  vrView,
		Update: func(q *api.Request, cur *wire.VirtualRouter, _ bool) (*fsm.Command, error) {
			var in VRUpdateInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if q.P.Role == auth.Robot && q.P.ServerID != 0 {
				return nil, wire.Errorf(http.StatusForbidden, q.Code(204), "This robot token is bound to server %d: virtual routers are the routers' agents' to change.", q.P.ServerID)
			}
			if in.Subnets != nil {
				if in.present() {
					return nil, wire.Errorf(http.StatusBadRequest, q.Code(115), "Change the state or the subnets of a virtual router, not both in one request.")
				}
				if q.P.Role == auth.Robot {
					return nil, wire.Errorf(http.StatusForbidden, q.Code(203), "Robots change the state of a virtual router, not its subnets.")
				}
				fe := wire.FieldErrors{}
				if len(*in.Subnets) == 0 {
					fe.Add("subnets", q.Code(116), "subnets lists at least one subnet: new ones without id, renamed ones with it.")
					return nil, fe.Err()
				}
				cloudCode := func(n int) string { return fmt.Sprintf("iaas_cloud_update_%03d", n) }
				specs := subnetsShape(fe, cloudCode, *in.Subnets, true)
				if err := fe.Err(); err != nil {
					return nil, err
				}
				return q.Command(fsm.VirtualRouterSubnetsType, &state.VRSubnetsPayload{ID: cur.ID, Subnets: specs})
			}
			if !in.present() {
				fe := wire.FieldErrors{}
				fe.Add("state", q.Code(104), "state or subnets is required; firewall rules change through /iaas/cloud/.")
				return nil, fe.Err()
			}
			ch, err := stateCommand(q, opts.AgentHolders, wire.KindVirtualRouter, cur.ID, cur.State, &in.StateInput)
			if err != nil {
				return nil, err
			}
			return q.Command(fsm.StateChangeIfType, ch)
		},
	})
}

// --- vm ---

// VMUpdateInput is the body of a VM update: a state change (state,
// expected_state and, from robots, observed_generation, error_code,
// error_detail) or a spec change (cpu, ram, gpu, name, dns, storages), not
// both at once.
type VMUpdateInput struct {
	StateInput
	CPU      *int                `json:"cpu"`
	RAM      *int                `json:"ram"`
	GPU      *int                `json:"gpu"`
	Name     *string             `json:"name"`
	DNS      *string             `json:"dns"`
	Storages []wire.StorageInput `json:"storages"`
}

func registerVM(a *api.API, opts Options) {
	api.Register(a, api.Service[*wire.VM]{
		App: App, Name: "vm", Tables: []string{state.VMs, state.Storages, state.IPAddresses},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"project_id": query.Number, "member_id": query.Number,
			"region_id": query.Number, "server_id": query.Number, "image_id": query.Number, "state": query.Number,
			"name": query.String, "cpu": query.Number, "ram": query.Number, "generation": query.Number,
			"observed_generation": query.Number, "guid": query.String}),
			Ordering: []string{"name", "id", "project_id", "state", "created", "updated"}},
		All:     (*state.ReadTxn).VMList,
		Get:     (*state.ReadTxn).VM,
		Visible: func(q *api.Request, v *wire.VM) bool { return seesTenant(q, v.MemberID, v.RegionID) },
		Expand:  vmView,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.VMInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			var project, region uint64
			if required(fe, q, "project_id", in.ProjectID != nil, 101) {
				if p, ok := q.Txn.Project(*in.ProjectID); !ok || !seesTenant(q, p.MemberID, p.RegionID) {
					fe.Add("project_id", q.Code(103), "Project %d does not exist.", *in.ProjectID)
				} else if p.Closed {
					fe.Add("project_id", q.Code(104), "Project %d is closed.", p.ID)
				} else {
					project, region = p.ID, p.RegionID
				}
			}
			if in.ID != nil {
				fe.Add("id", q.Code(100), "id is not allowed on create.")
			}
			s := vmShape(fe, "", &in)
			vmPrecheck(fe, q, "", &s, region)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			s.ProjectID = project
			return q.Command(fsm.VMCreateType, &state.VMCreatePayload{VM: s, Placement: q.API.Placement()})
		},
		Update: func(q *api.Request, cur *wire.VM, partial bool) (*fsm.Command, error) {
			var in VMUpdateInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			spec := in.CPU != nil || in.RAM != nil || in.GPU != nil || in.Name != nil || in.DNS != nil || in.Storages != nil
			if err := robotOnServer(q, cur); err != nil {
				return nil, err
			}
			if in.present() {
				if spec {
					return nil, wire.Errorf(http.StatusBadRequest, q.Code(116), "Change the state or the spec of a VM, not both in one request.")
				}
				ch, err := stateCommand(q, opts.AgentHolders, wire.KindVM, cur.ID, cur.State, &in.StateInput)
				if err != nil {
					return nil, err
				}
				return q.Command(fsm.StateChangeIfType, ch)
			}
			if q.P.Role == auth.Robot {
				return nil, wire.Errorf(http.StatusForbidden, q.Code(203), "Robots change the state of a VM, not its spec.")
			}
			fe := wire.FieldErrors{}
			if !partial {
				// PUT replaces the spec: the required fields must be sent,
				// gpu left out is 0, storages lists every disk.
				for _, r := range []struct {
					field string
					sent  bool
					code  int
				}{{"name", in.Name != nil, 127}, {"cpu", in.CPU != nil, 117}, {"ram", in.RAM != nil, 120},
					{"dns", in.DNS != nil, 124}, {"storages", in.Storages != nil, 112}} {
					if !r.sent {
						fe.Add(r.field, q.Code(r.code), "This field is required.")
					}
				}
				if in.GPU == nil {
					in.GPU = new(int)
				}
			}
			ch := state.VMChange{ID: cur.ID, CPU: in.CPU, RAM: in.RAM, GPU: in.GPU, AllStorages: !partial}
			if in.CPU != nil && (*in.CPU < 1 || *in.CPU > wire.MaxCores) {
				fe.Add("cpu", q.Code(117), "cpu must be an integer from 1 to %d.", wire.MaxCores)
			}
			if in.RAM != nil && (*in.RAM < 1 || *in.RAM > wire.MaxRAMGB) {
				fe.Add("ram", q.Code(120), "ram must be an integer from 1 to %d.", wire.MaxRAMGB)
			}
			if in.GPU != nil && *in.GPU != 0 {
				fe.Add("gpu", q.Code(146), "No GPU devices are available: gpu must be 0.")
			}
			if in.Name != nil {
				n := strings.TrimSpace(*in.Name)
				if msg := nameFault(&n, 128); msg != "" {
					fe.Add("name", q.Code(127), "%s", msg)
				}
				ch.Name = &n
			}
			if in.DNS != nil {
				tmp := wire.VMInput{DNS: in.DNS}
				sub := wire.FieldErrors{}
				s := vmShape(sub, "", &tmp)
				if e, bad := sub["dns"]; bad {
					fe["dns"] = wire.FieldError{ErrorCode: strings.Replace(e.ErrorCode, "create", "update", 1), Detail: e.Detail}
				}
				ch.DNS = &s.DNS
			}
			ch.Storages = storageChanges(fe, "storages", q.Code(113), in.Storages)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.VMUpdateType, &state.VMUpdatePayload{Change: ch, Placement: q.API.Placement()})
		},
	})
}

// storageChanges reads the storages of a VM's spec change (a VM update, a
// VM of a cloud update): each needs gb ≥ 1 and, without an id, a name of at
// most 50 characters; none may be listed twice (all with code, at field).
// State matches them to the VM's disks (by id, else by name) and checks
// growth and primary.
func storageChanges(fe wire.FieldErrors, field, code string, in []wire.StorageInput) []state.StorageSpec {
	var out []state.StorageSpec
	ids, names := map[uint64]bool{}, map[string]bool{}
	for i, st := range in {
		ss := state.StorageSpec{}
		api.Set(&ss.ID, st.ID)
		if st.Name != nil {
			ss.Name = strings.TrimSpace(*st.Name)
		}
		api.Set(&ss.GB, st.GB)
		api.Set(&ss.Primary, st.Primary)
		switch {
		case api.TextFault(ss.Name, 50) != "":
			fe.Add(field, code, "storages[%d].name: %s", i, api.TextFault(ss.Name, 50))
		case ss.GB < 1 || ss.GB > wire.MaxStorageGB || (ss.ID == 0 && ss.Name == ""):
			fe.Add(field, code, "storages[%d] needs gb from 1 to %d, and a name (at most 50 characters) when it has no id.", i, wire.MaxStorageGB)
		case (ss.ID != 0 && ids[ss.ID]) || (ss.Name != "" && names[ss.Name]):
			fe.Add(field, code, "storages[%d] names a storage listed before it.", i)
		}
		ids[ss.ID], names[ss.Name] = ss.ID != 0, ss.Name != ""
		out = append(out, ss)
	}
	return out
}

func registerVMHistory(a *api.API) {
	api.Register(a, api.Service[*wire.VMHistory]{
		App: App, Name: "vm_history", NoRead: true, Tables: []string{state.VMHistories},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"vm_id": query.Number, "project_id": query.Number,
			"member_id": query.Number, "state": query.Number, "user_id": query.Number, "robot": query.Bool}),
			Ordering: []string{"id", "vm_id", "created"}},
		All: (*state.ReadTxn).VMHistoryList,
		Get: (*state.ReadTxn).VMHistory,
		Visible: func(q *api.Request, h *wire.VMHistory) bool {
			vm, ok := q.Txn.VM(h.VMID)
			return ok && seesTenant(q, h.MemberID, vm.RegionID)
		},
	})
}

func registerStorage(a *api.API) {
	api.Register(a, api.Service[*wire.Storage]{
		App: App, Name: "storage", Tables: []string{state.Storages},
		Nested: nestedUnderVM(func(s *wire.Storage) uint64 { return s.VMID }),
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"vm_id": query.Number, "project_id": query.Number,
			"member_id": query.Number, "name": query.String, "gb": query.Number, "primary": query.Bool}),
			Ordering: []string{"id", "vm_id", "name", "created", "updated"}},
		All: (*state.ReadTxn).StorageList,
		Get: (*state.ReadTxn).Storage,
		Visible: func(q *api.Request, s *wire.Storage) bool {
			vm, ok := q.Txn.VM(s.VMID)
			return ok && seesTenant(q, s.MemberID, vm.RegionID)
		},
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.StorageCreateInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if vm, ok := q.Parent(); ok { // POST /iaas/vm/{vm_id}/storage/: the path's VM
				if in.VMID != nil && *in.VMID != vm {
					fe.Add("vm_id", q.Code(107), "vm_id %d is not the VM of the path (%d).", *in.VMID, vm)
				}
				in.VMID = &vm
			}
			if required(fe, q, "vm_id", in.VMID != nil, 101) {
				if vm, ok := q.Txn.VM(*in.VMID); !ok || !seesTenant(q, vm.MemberID, vm.RegionID) {
					fe.Add("vm_id", q.Code(103), "VM %d does not exist.", *in.VMID)
				}
			}
			if msg := nameFault(in.Name, 50); msg != "" {
				fe.Add("name", q.Code(104), "%s", msg)
			}
			if in.GB == nil || *in.GB < 1 || *in.GB > wire.MaxStorageGB {
				fe.Add("gb", q.Code(105), "gb must be an integer from 1 to %d.", wire.MaxStorageGB)
			}
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.StorageCreateType, &state.StorageCreatePayload{VMID: *in.VMID,
				Storage: state.StorageSpec{Name: strings.TrimSpace(*in.Name), GB: *in.GB}, Placement: q.API.Placement()})
		},
	})
}
