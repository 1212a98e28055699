package iaas

// Shared pieces of the compute services: who sees what, the shape checks of
// a VM (shared by vm and cloud), and the expanded views.
//
// Visibility: a tenant sees its member's projects and what hangs off them;
// a robot sees the objects of the region its token is bound to; global
// users see everything. Another member's object is 404.

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/auth"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/netx"
)

// seesTenant: may the caller see an object of member in region?
func seesTenant(q *api.Request, member, region uint64) bool {
	switch {
	case q.P.Global():
		return true
	case q.P.Role == auth.Robot:
		return region == q.P.RegionID
	}
	return member == q.P.MemberID
}

// seesRegion: may the caller see hardware of region? Global users all,
// robots their region's; tenants none.
func seesRegion(q *api.Request, region uint64) bool {
	return q.P.Global() || (q.P.Role == auth.Robot && region == q.P.RegionID)
}

// denyRegion is the 403 of a robot writing hardware of another region.
func denyRegion(q *api.Request, region uint64) error {
	if seesRegion(q, region) {
		return nil
	}
	return wire.Errorf(http.StatusForbidden, q.Code(202), "You may only manage the hardware of your own region.")
}

// robotOnServer is the 403 of a robot token bound to a server changing a
// VM on another server (or its snapshots and backups).
func robotOnServer(q *api.Request, vm *wire.VM) error {
	if denyOtherServer(q, vm.ServerID) != nil {
		return wire.Errorf(http.StatusForbidden, q.Code(204), "This robot token is bound to server %d; VM %d is on server %d.", q.P.ServerID, vm.ID, vm.ServerID)
	}
	return nil
}

// denyOtherServer is the 403 of a robot token bound to a server writing
// hardware records other than its server's (the server itself, its
// interfaces); server 0 names records of no server (new servers, routers,
// region images), which such a token never writes.
func denyOtherServer(q *api.Request, server uint64) error {
	if q.P.Role == auth.Robot && q.P.ServerID != 0 && server != q.P.ServerID {
		if server == 0 {
			return wire.Errorf(http.StatusForbidden, q.Code(204), "This robot token is bound to server %d: it manages that server's records only.", q.P.ServerID)
		}
		return wire.Errorf(http.StatusForbidden, q.Code(204), "This robot token is bound to server %d, not %d.", q.P.ServerID, server)
	}
	return nil
}

// newGUID is a random (version 4) UUID, stamped by the leader.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// userdataPrefixes are the starts cloud-init accepts (besides MIME multipart).
var userdataPrefixes = []string{"#!", "#include", "#cloud-config", "#upstart-job", "#cloud-boothook"}

// vmShape checks the fields of a new VM that need no state, in the
// documented order, with iaas_vm_create codes; field names get prefix.
func vmShape(fe wire.FieldErrors, prefix string, in *wire.VMInput) state.VMSpec {
	c := func(n int) string { return fmt.Sprintf("iaas_vm_create_%03d", n) }
	add := func(field string, n int, format string, args ...any) { fe.Add(prefix+field, c(n), format, args...) }
	s := state.VMSpec{GUID: newGUID()}
	if in.ImageID == nil {
		add("image_id", 105, "This field is required.")
	} else {
		s.ImageID = *in.ImageID
	}
	if in.StorageTypeID == nil {
		add("storage_type_id", 109, "This field is required.")
	} else {
		s.StorageTypeID = *in.StorageTypeID
	}
	if len(in.Storages) == 0 {
		add("storages", 112, "At least one storage is required.")
	}
	if len(in.Storages) > wire.MaxVMStorages {
		add("storages", 113, "A VM has at most %d storages; %d were sent.", wire.MaxVMStorages, len(in.Storages))
		in.Storages = nil
	}
	primaries := 0
	names := map[string]bool{}
	total := 0 // ≤ len × MaxStorageGB: the body's 1 MiB keeps it far from overflow
	for i, st := range in.Storages {
		if msg := nameFault(st.Name, 50); msg != "" {
			add("storages", 113, "storages[%d].name: %s", i, msg)
			continue
		}
		if st.GB == nil || *st.GB < 1 || *st.GB > wire.MaxStorageGB {
			add("storages", 113, "storages[%d] needs gb from 1 to %d.", i, wire.MaxStorageGB)
			continue
		}
		total += *st.GB
		if names[strings.TrimSpace(*st.Name)] {
			add("storages", 113, "storages[%d]: the name %q is taken by an earlier storage.", i, strings.TrimSpace(*st.Name))
			continue
		}
		names[strings.TrimSpace(*st.Name)] = true
		p := st.Primary != nil && *st.Primary
		if p {
			primaries++
		}
		s.Storages = append(s.Storages, state.StorageSpec{Name: strings.TrimSpace(*st.Name), GB: *st.GB, Primary: p})
	}
	if len(in.Storages) > 0 {
		switch {
		case total > wire.MaxStorageGB:
			add("storages", 113, "The storages of a VM hold at most %d GB together; these hold %d.", wire.MaxStorageGB, total)
		case primaries == 0:
			add("storages", 114, "Exactly one storage must be primary; none is.")
		case primaries > 1:
			add("storages", 115, "Exactly one storage must be primary; %d are.", primaries)
		}
	}
	positive := func(field string, v *int, missing, bad, limit int) int {
		switch {
		case v == nil:
			add(field, missing, "This field is required.")
		case *v < 1 || *v > limit:
			add(field, bad, "%s must be an integer from 1 to %d.", field, limit)
		default:
			return *v
		}
		return 0
	}
	s.CPU = positive("cpu", in.CPU, 117, 119, wire.MaxCores)
	s.RAM = positive("ram", in.RAM, 120, 122, wire.MaxRAMGB)
	if in.GPU != nil && *in.GPU != 0 {
		add("gpu", 146, "No GPU devices are available: gpu must be 0.")
	}
	if in.DNS == nil || strings.TrimSpace(*in.DNS) == "" {
		add("dns", 124, "This field is required.")
	} else {
		var parts []string
		for _, d := range strings.Split(*in.DNS, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(d))
			if err != nil {
				add("dns", 125, "%q is not an IP address.", strings.TrimSpace(d))
				break
			}
			parts = append(parts, a.String())
		}
		s.DNS = strings.Join(parts, ",")
	}
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		add("name", 126, "This field is required.")
	} else if s.Name = strings.TrimSpace(*in.Name); api.TextFault(s.Name, 128) != "" {
		add("name", 127, "%s", api.TextFault(s.Name, 128))
	}
	if in.PublicKey != nil && strings.TrimSpace(*in.PublicKey) != "" {
		if err := checkSSHKey(*in.PublicKey); err != nil {
			add("public_key", 129, "public_key is not a valid SSH public key: %v.", err)
		} else {
			s.PublicKey = strings.TrimSpace(*in.PublicKey)
		}
	}
	if in.GatewaySubnet == nil {
		add("gateway_subnet", 130, "This field is required.")
	} else if p, gw, err := netx.ParseGatewayPrefix(*in.GatewaySubnet); err != nil || !p.Contains(gw) {
		add("gateway_subnet", 130, "gateway_subnet %q is not an address range such as 10.0.0.1/24.", *in.GatewaySubnet)
	} else {
		s.GatewaySubnet = netx.FormatGatewayPrefix(p, gw)
	}
	if len(in.IPAddresses) == 0 {
		add("ip_addresses", 132, "At least one IP address is required.")
	}
	for i, ip := range in.IPAddresses {
		if ip.Address == nil {
			add(fmt.Sprintf("ip_addresses[%d]", i), 141, "address is required.")
			continue
		}
		s.IPAddresses = append(s.IPAddresses, state.IPSpec{Address: strings.TrimSpace(*ip.Address), NAT: ip.NAT != nil && *ip.NAT})
	}
	if in.Userdata != nil && *in.Userdata != "" {
		u := *in.Userdata
		ok := strings.HasPrefix(u, "Content-Type: multipart/") || strings.HasPrefix(u, "MIME-Version:")
		for _, p := range userdataPrefixes {
			ok = ok || strings.HasPrefix(u, p)
		}
		switch {
		case len(u) > wire.UserdataMax:
			add("userdata", 144, "userdata is %d bytes; at most %d are allowed.", len(u), wire.UserdataMax)
		case !ok:
			add("userdata", 145, "userdata must start with #!, #include, #cloud-config, #upstart-job or #cloud-boothook, or be MIME multipart.")
		default:
			s.Userdata = u
		}
	}
	return s
}

// vmPrecheck repeats, against the request's read view, the checks of a new
// VM that depend on state but not on other new objects: the image (107
// unknown, 108 not in the region) and the storage type (111), so that they
// are reported together with the shape errors. Apply checks them again.
func vmPrecheck(fe wire.FieldErrors, q *api.Request, prefix string, s *state.VMSpec, region uint64) {
	c := func(n int) string { return fmt.Sprintf("iaas_vm_create_%03d", n) }
	if _, bad := fe[prefix+"image_id"]; !bad && s.ImageID != 0 {
		if _, ok := q.Txn.Image(s.ImageID); !ok {
			fe.Add(prefix+"image_id", c(107), "Image %d does not exist.", s.ImageID)
		} else if region != 0 && !q.Txn.ImageInRegion(region, s.ImageID) {
			fe.Add(prefix+"image_id", c(108), "Image %d is not available in region %d.", s.ImageID, region)
		}
	}
	if _, bad := fe[prefix+"storage_type_id"]; !bad && s.StorageTypeID != 0 {
		if _, ok := q.Txn.StorageType(s.StorageTypeID); !ok {
			fe.Add(prefix+"storage_type_id", c(111), "Storage type %d does not exist.", s.StorageTypeID)
		}
	}
}

// parseState reads a state value: an integer, else 104.
func parseState(fe wire.FieldErrors, q *api.Request, field string, raw json.RawMessage) (int, bool) {
	text := strings.TrimSpace(string(raw))
	if u, err := strconv.Unquote(text); err == nil {
		text = strings.TrimSpace(u) // "4" as CloudCIX clients send it
	}
	n, err := strconv.Atoi(text)
	if err != nil {
		fe.Add(field, q.Code(104), "%s must be an integer.", field)
		return 0, false
	}
	return n, true
}

// StateInput carries the state fields of a VM or virtual router update.
type StateInput struct {
	State              json.RawMessage `json:"state"`
	ExpectedState      json.RawMessage `json:"expected_state"`
	ObservedGeneration *uint64         `json:"observed_generation"`
	ErrorCode          *string         `json:"error_code"`
	ErrorDetail        *string         `json:"error_detail"`
}

func (s *StateInput) present() bool {
	return s.State != nil || s.ExpectedState != nil || s.ObservedGeneration != nil || s.ErrorCode != nil || s.ErrorDetail != nil
}

// stateCommand builds the state change of a VM or virtual router: users
// the USER map, robots the ROBOT map with compare-and-swap on
// expected_state (required unless If-Match names the modified_index the
// robot read; Apply checks If-Match for everyone). Robots alone report
// observed_generation and the error of UNRESOURCED.
//
// Without state the object is to stay in its state (a robot reporting
// observed_generation alone, a rename): expected_state if given, else cur,
// compared and swapped, so that a change that lands first is not undone.
func stateCommand(q *api.Request, holders AgentHolders, kind string, id uint64, cur int, in *StateInput) (*state.StateChange, error) {
	fe := wire.FieldErrors{}
	robot := q.P.Role == auth.Robot
	if robot {
		if err := heldByAnother(q, holders, kind, id); err != nil {
			return nil, err
		}
	}
	ch := &state.StateChange{Kind: kind, ID: id}
	if in.State == nil {
		if in.ErrorCode != nil || in.ErrorDetail != nil {
			fe.Add("state", q.Code(104), "state is required with error_code or error_detail.")
			return nil, fe.Err()
		}
		ch.To, ch.Expected = cur, &cur
	}
	if !robot && (in.ObservedGeneration != nil || in.ErrorCode != nil || in.ErrorDetail != nil) {
		return nil, wire.Errorf(http.StatusForbidden, q.Code(203), "Only robots report observed_generation, error_code and error_detail.")
	}
	if in.State != nil {
		if to, ok := parseState(fe, q, "state", in.State); ok {
			ch.To = to
		}
	}
	if in.ExpectedState != nil {
		if e, ok := parseState(fe, q, "expected_state", in.ExpectedState); ok {
			ch.Expected = &e
			if in.State == nil {
				ch.To = e
			}
		}
	}
	if robot && ch.Expected == nil && in.State != nil && q.Request.Header.Get("If-Match") == "" {
		fe.Add("expected_state", q.Code(111), "A robot must send expected_state (or If-Match) with a state change (compare-and-swap).")
	}
	if err := fe.Err(); err != nil {
		return nil, err
	}
	ch.ObservedGeneration = in.ObservedGeneration
	if in.ErrorCode != nil {
		ch.ErrorCode = truncate(*in.ErrorCode, 64)
	}
	if in.ErrorDetail != nil {
		ch.ErrorDetail = truncate(*in.ErrorDetail, 1024)
	}
	return ch, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// --- views ---

func vmView(r *state.ReadTxn, vm *wire.VM) any { return vmDetail(r, vm) }

func vmDetail(r *state.ReadTxn, vm *wire.VM) wire.VMView {
	v := wire.VMView{VM: vm, Stable: wire.IsStable(vm.State), Storages: r.StoragesOfVM(vm.ID), IPAddresses: []wire.IPView{}}
	if v.Storages == nil {
		v.Storages = []*wire.Storage{}
	}
	priv, pub := r.VMAddresses(vm)
	for _, a := range priv {
		iv := wire.IPView{ID: a.ID, Address: a.Address, MACAddress: a.MACAddress, SubnetID: a.BlockID}
		if p, ok := pub[a.ID]; ok {
			iv.PublicIP = &wire.PubRef{ID: p.ID, Address: p.Address}
		}
		v.IPAddresses = append(v.IPAddresses, iv)
	}
	return v
}

func subnetRefs(r *state.ReadTxn, p *wire.Project) []wire.SubnetRef {
	out := []wire.SubnetRef{}
	for _, b := range r.ProjectSubnets(p) {
		out = append(out, wire.SubnetRef{ID: b.ID, Name: b.Name, VLAN: b.VLAN, VXLAN: b.VXLAN, VirtualRouterID: b.VirtualRouterID,
			AddressRange: netx.FormatGatewayPrefix(netip.MustParsePrefix(b.CIDR), netip.MustParseAddr(b.Gateway))})
	}
	return out
}

func vrView(r *state.ReadTxn, vr *wire.VirtualRouter) any { return vrDetail(r, vr) }

func vrDetail(r *state.ReadTxn, vr *wire.VirtualRouter) wire.VRView {
	v := wire.VRView{VirtualRouter: vr, Stable: wire.IsStable(vr.State), Subnets: []wire.SubnetRef{}}
	if p, ok := r.Project(vr.ProjectID); ok {
		v.Subnets = subnetRefs(r, p)
	}
	return v
}

func projectView(r *state.ReadTxn, p *wire.Project) any { return projectDetail(r, p) }

func projectDetail(r *state.ReadTxn, p *wire.Project) wire.ProjectView {
	v := wire.ProjectView{Project: p, Stable: true, ShutDown: true, MinState: wire.StateClosed}
	states := []int{}
	if vr, ok := r.VirtualRouter(p.VirtualRouterID); ok {
		states = append(states, vr.State)
	}
	for _, vm := range r.VMsOfProject(p.ID) {
		states = append(states, vm.State)
	}
	for _, s := range states {
		v.MinState = min(v.MinState, s)
		v.Stable = v.Stable && wire.IsStable(s)
		v.ShutDown = v.ShutDown && containsInt(wire.ShutDownStates, s)
	}
	return v
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func parseAddr(s string) (string, error) {
	a, err := netx.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

func parseMAC(s string) (string, error) {
	m, err := netx.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	return m.String(), nil
}

// nestedUnderVM serves a service of objects that each belong to one VM
// under the VM too, as CloudCIX's vm/<vm_id>/<name>/ (api.Nested): a VM
// the caller does not see is 404, as for vm/<id>/.
func nestedUnderVM[T wire.Object](vmOf func(T) uint64) *api.Nested[T] {
	return &api.Nested[T]{Parent: "vm", Of: vmOf, Sees: func(q *api.Request, id uint64) bool {
		vm, ok := q.Txn.VM(id)
		return ok && seesTenant(q, vm.MemberID, vm.RegionID)
	}}
}
