package systest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestComputeConcurrentClouds: clients on all three nodes of a cluster
// create clouds (a virtual router and one NATed VM each: two public
// addresses) until the router's floating /27 (29 usable addresses) runs
// out. Public addresses and VLANs are chosen inside Apply, so exactly 14
// clouds succeed, every other answer is 400 iaas_vm_create_142 (the 15th
// cloud's router would take the last address but its VM finds none, and
// the whole cloud is undone), no address or VLAN is handed out twice, and
// every node ends with the same virtual routers.
func TestComputeConcurrentClouds(t *testing.T) {
	const clients, attempts = 6, 5
	c := startCluster(t, 3)
	n1 := c.nodes[0]
	region := c.create(n1, "region", map[string]any{"name": "compute-systest", "customers": []uint64{1}})
	st := c.mustCreate(n1, "/iaas/storage_type/", map[string]any{"name": "SSD"})
	img := c.mustCreate(n1, "/iaas/image/", map[string]any{"display_name": "Ubuntu", "server_type_id": 2})
	c.mustCreate(n1, "/iaas/region_image/", map[string]any{"region_id": region, "image_id": img})
	c.mustCreate(n1, "/iaas/server/", map[string]any{"region_id": region, "type_id": 2, "storage_type_id": st, "cores": 64, "ram": 1024, "gb": 100000})
	asn := c.mustCreate(n1, "/iaas/asn/", map[string]any{"member_id": 1, "number": 64900 + time.Now().UnixNano()%90})
	alloc := c.mustCreate(n1, "/iaas/allocation/", map[string]any{"asn_id": asn, "address_range": "100.96.0.0/24", "type": "public"})
	fs := c.mustCreate(n1, "/iaas/subnet/", map[string]any{"allocation_id": alloc, "address_range": "100.96.0.1/27"})
	c.mustCreate(n1, "/iaas/router/", map[string]any{"region_id": region, "phantom": true, "floating_subnet_ids": []uint64{fs}})

	type cloudResp struct {
		Content struct {
			VirtualRouter struct {
				IPAddress string `json:"ip_address"`
			} `json:"virtual_router"`
			Subnets []struct {
				VLAN uint32 `json:"vlan"`
			} `json:"subnets"`
			VMs []struct {
				IPAddresses []struct {
					PublicIP *struct {
						Address string `json:"address"`
					} `json:"public_ip"`
				} `json:"ip_addresses"`
			} `json:"vms"`
		} `json:"content"`
	}
	var mu sync.Mutex
	var public []string
	var vlans []uint32
	created, exhausted := 0, 0
	var other []string
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range attempts {
				n := c.nodes[(i+j)%len(c.nodes)]
				body := map[string]any{
					"project": map[string]any{"name": fmt.Sprintf("p-%d-%d", i, j), "region_id": region},
					"subnets": []any{map[string]any{"name": "a", "address_range": "10.0.0.1/24"}},
					"vms": []any{map[string]any{"name": "vm", "image_id": img, "storage_type_id": st, "cpu": 1, "ram": 1,
						"dns": "1.1.1.1", "gateway_subnet": "10.0.0.1/24",
						"storages":     []any{map[string]any{"name": "root", "gb": 10, "primary": true}},
						"ip_addresses": []any{map[string]any{"address": "10.0.0.10", "nat": true}}}},
				}
				r := c.do(n, http.MethodPost, "/iaas/cloud/", body)
				mu.Lock()
				switch {
				case r.Err == nil && r.Status == http.StatusCreated:
					var cr cloudResp
					if err := json.Unmarshal(r.Body, &cr); err != nil || len(cr.Content.VMs) != 1 || cr.Content.VMs[0].IPAddresses[0].PublicIP == nil {
						other = append(other, "bad body: "+string(r.Body))
						break
					}
					created++
					public = append(public, cr.Content.VirtualRouter.IPAddress, cr.Content.VMs[0].IPAddresses[0].PublicIP.Address)
					vlans = append(vlans, cr.Content.Subnets[0].VLAN)
				case r.Err == nil && r.Status == http.StatusBadRequest && r.errorCode() == "iaas_vm_create_142":
					exhausted++
				default:
					other = append(other, r.String())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected answers: %v", other)
	}
	if created != 14 || exhausted != clients*attempts-14 {
		t.Fatalf("%d clouds created, %d refused for lack of addresses; want 14 and %d", created, exhausted, clients*attempts-14)
	}
	slices.Sort(public)
	if len(slices.Compact(slices.Clone(public))) != len(public) {
		t.Fatalf("a public address was handed out twice: %v", public)
	}
	slices.Sort(vlans)
	if len(slices.Compact(slices.Clone(vlans))) != len(vlans) || vlans[0] != 1000 || vlans[len(vlans)-1] != 1013 {
		t.Fatalf("VLANs: %v", vlans)
	}
	// Every node holds the same virtual routers and addresses.
	var want string
	for _, n := range c.nodes {
		var got string
		err := waitFor(30*time.Second, func() error {
			r := c.do(n, http.MethodGet, "/iaas/virtual_router/?stale=true&limit=100&order=id", nil)
			if r.Err != nil || r.Status != http.StatusOK {
				return fmt.Errorf("%s", r)
			}
			var l struct {
				Content []struct {
					ID        uint64 `json:"id"`
					IPAddress string `json:"ip_address"`
				} `json:"content"`
			}
			if err := json.Unmarshal(r.Body, &l); err != nil {
				return err
			}
			if len(l.Content) != 14 {
				return fmt.Errorf("%s has %d virtual routers", n.name, len(l.Content))
			}
			b, _ := json.Marshal(l.Content)
			got = string(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			want = got
		} else if got != want {
			t.Fatalf("%s differs:\n%s\n%s", n.name, got, want)
		}
	}
}
