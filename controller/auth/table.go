package auth

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/regentcloud/regent/pkg/api"
)

// Action is what a route does to a service.
type Action string

// Actions.
const (
	List   Action = "list"
	Read   Action = "read"
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
)

// Table says which roles may perform each action on each service. A role not
// listed gets 403; visibility of single objects is decided by the service.
// GlobalAdmin in a cell admits only the global users who are administrators;
// Global admits every global user (see Principal.Holds).
type Table map[string]map[Action][]Role

// Permissions is the permission table of every route of the API. It is data,
// tested as a matrix; services add their rows as they are written.
func Permissions() Table {
	all := []Role{Global, Admin, User}
	read := []Role{Global, Admin, User, Robot}
	return Table{
		"member": {List: all, Read: all, Create: {Global}, Update: {Global, Admin}, Delete: {Global}},
		"user":   {List: all, Read: all, Create: {Global, Admin}, Update: all, Delete: {Global, Admin}},
		"token":  {List: all, Read: all, Create: all, Delete: all},
		"region": {List: {Global, Admin, User, Robot}, Read: {Global, Admin, User, Robot}, Create: {Global}, Update: {Global}, Delete: {Global}},
		// iaas (CloudCIX IPAM): every role reads, robots included; which
		// objects a member sees is decided by the services. Only the CIX
		// member's administrators create allocations; the administrators
		// of the member that owns the ASN manage them (CloudCIX's
		// Allocation: "can only be run by an Administrator"), and only
		// administrators create subnets; ASNs are any CIX user's.
		"asn":          {List: read, Read: read, Create: {Global}, Update: {Global}, Delete: {Global}},
		"allocation":   {List: read, Read: read, Create: {GlobalAdmin}, Update: {GlobalAdmin, Admin}, Delete: {GlobalAdmin, Admin}},
		"subnet":       {List: read, Read: read, Create: {GlobalAdmin, Admin}, Update: all, Delete: all},
		"ip_address":   {List: read, Read: read, Create: all, Update: all, Delete: all},
		"subnet_space": {List: read},
		"ip_validator": {List: read},
		// the CIX lists: everyone reads (appliances pull them), the
		// operator (a global user) fills them.
		"cix_blacklist": {List: read, Read: read, Create: {Global}, Delete: {Global}},
		"cix_whitelist": {List: read, Read: read, Create: {Global}, Delete: {Global}},
		// iaas DNS: any member user manages its member's domains and
		// records (domain create also needs a self-managed member).
		"domain":     {List: all, Read: all, Create: all, Delete: all},
		"record":     {List: all, Read: all, Create: all, Update: all, Delete: all},
		"ptr_record": {List: all, Read: all, Create: all, Update: all, Delete: all},
		// iaas compute. Tenants manage their member's projects and what
		// hangs off them; robots (agents) read their region's and change
		// states; the catalogue is read by all and written by global users;
		// hardware (servers, interfaces, routers) belongs to global users
		// and the robots of its region.
		"project":          {List: read, Read: read, Create: all, Update: all},
		"cloud":            {Read: read, Create: all, Update: all},
		"virtual_router":   {List: read, Read: read, Update: read},
		"vm":               {List: read, Read: read, Create: all, Update: read},
		"vm_history":       {List: read},
		"storage":          {List: read, Read: read, Create: {GlobalAdmin, Admin}}, // CloudCIX: "Only administrators"
		"storage_type":     {List: read, Read: read, Create: {Global}, Update: {Global}},
		"image":            {List: read, Read: read, Create: {Global}, Update: {Global}},
		"region_image":     {List: read, Read: read, Create: {Global, Robot}, Delete: {Global, Robot}},
		"server_type":      {List: read, Read: read},
		"server":           {List: {Global, Robot}, Read: {Global, Robot}, Create: {Global, Robot}, Update: {Global, Robot}},
		"interface":        {List: {Global, Robot}, Read: {Global, Robot}, Create: {Global, Robot}, Update: {Global, Robot}, Delete: {Global, Robot}},
		"vpn":              {List: read, Read: read, Create: all, Update: all, Delete: all},
		"vpn_history":      {List: read},
		"snapshot":         {List: read, Read: read, Create: all, Update: read},
		"snapshot_tree":    {Read: read},
		"snapshot_history": {List: read},
		"backup":           {List: read, Read: read, Create: all, Update: read},
		"backup_history":   {List: read},
		"capacity":         {List: read},
		"metrics":          {Read: {Global, Robot}},
		"router":           {List: {Global, Robot}, Read: {Global, Robot}, Create: {Global, Robot}, Update: {Global, Robot}},
		// melange (/v0.1/ipam): tenant routes; the tenant of the URL must
		// be the caller's member unless the caller is global (403), so
		// robots, bound to no tenant, are refused here.
		"melange_version":    {Read: read},
		"melange_extension":  {List: read, Read: read},
		"melange_ip_block":   {List: all, Read: all, Create: all, Update: all, Delete: all},
		"melange_subnet":     {List: all, Create: all},
		"melange_ip_address": {List: all, Read: all, Create: all, Update: all, Delete: all},
		"melange_policy":     {List: all, Read: all, Create: all, Update: all, Delete: all},
		"melange_ip_range":   {List: all, Read: all, Create: all, Update: all, Delete: all},
		"melange_ip_octet":   {List: all, Read: all, Create: all, Update: all, Delete: all},
		"melange_ip_route":   {List: all, Read: all, Create: all, Update: all, Delete: all},
		"melange_network":    {List: all, Read: all, Create: all, Delete: all},
		// interfaces: reading one is a tenant route; creating and deleting
		// them are provider routes (below in spirit: global only).
		"melange_interface":    {Read: all, Create: {Global}, Delete: {Global}},
		"melange_allocated_ip": {List: all},
		"melange_nat":          {List: all, Create: all, Delete: all},
		"melange_allowed_ip":   {List: all, Read: all, Create: all, Delete: all},
		// MAC address ranges are provider routes, not tenant-scoped:
		// Melange's admin only (melange-facts §9, §15), global here.
		"melange_mac_address_range":     {List: {Global}, Read: {Global}, Create: {Global}, Delete: {Global}},
		"melange_instance":              {Read: {Global}, Update: {Global}, Delete: {Global}},
		"melange_provider_allocated_ip": {List: {Global}},
		"melange_provider_nat":          {List: {Global}, Create: {Global}, Delete: {Global}},
		// agent protocol (/v1/agent/) and CloudCIX run_robot: robots only
		"agent":     {Read: {Robot}, Create: {Robot}, Update: {Robot}},
		"run_robot": {List: {Robot}, Create: {Robot}},
		// the firewall log of a project's virtual router, from its agent
		"policy_log": {List: all},
		"vpn_status": {Read: read},
		// operator routes: cluster administration. Any global user reads
		// the members and the leader; changing the cluster (leadership
		// transfer, member removal; Create is join's, which the cluster
		// token authorises) needs a global administrator, as do the
		// snapshots: a download holds every secret of the region (VPN
		// pre-shared keys, token hashes) and a restore replaces it all.
		"operator":          {List: {Global}, Read: {Global}, Create: {GlobalAdmin}, Update: {GlobalAdmin}, Delete: {GlobalAdmin}},
		"operator_snapshot": {Read: {GlobalAdmin}, Update: {GlobalAdmin}},
	}
}

// Check returns a 403 error when p may not perform action on service.
func (t Table) Check(p *Principal, app, service string, action Action) error {
	for _, r := range t[service][action] {
		if p.Holds(r) {
			return nil
		}
	}
	detail := fmt.Sprintf("You do not have permission to %s %s objects.", action, service)
	if p.Role == Global && slices.Contains(t[service][action], GlobalAdmin) {
		detail = fmt.Sprintf("Only global users who are administrators may %s %s objects.", action, service)
	}
	return &api.Error{Status: http.StatusForbidden, ErrorCode: fmt.Sprintf("%s_%s_%s_201", app, service, action), Detail: detail}
}
