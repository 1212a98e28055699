package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	"github.com/regentcloud/regent/pkg/api"
)

// TestIPAMRESTDeterminism drives ASN and IP address updates and the CIX
// lists (types 55–60), mixed with allocations and deletes, through the
// FSM; replicas replaying the log, in batches or after a restore from a
// mid-log snapshot, agree on every result and on the final state.
func TestIPAMRESTDeterminism(t *testing.T) {
	for _, seed := range []uint64{7, 8, 20261122} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			g := newIPAMGen(t, seed)
			other := g.must(fsm.MemberCreateType, &api.Member{Name: "other"}).(*api.Member).ID
			sn := g.blocks[3] // the cloudcix subnet 10.1.0.0/28
			tables := []fsm.MessageType{fsm.CIXBlacklistCreateType, fsm.CIXWhitelistCreateType}
			for range 1500 {
				r := g.read()
				switch n := g.rng.IntN(100); {
				case n < 15:
					g.emit(fsm.ASNCreateType, &api.ASN{MemberID: g.member, Number: uint64(64500 + g.rng.IntN(40))}, 0)
				case n < 30:
					id := pick(g.gen, r.ASNList())
					a := api.ASN{Meta: api.Meta{ID: id}, MemberID: g.member, Number: uint64(64500 + g.rng.IntN(40))}
					if g.rng.IntN(3) == 0 {
						a.MemberID = other
					}
					g.emit(fsm.ASNUpdateType, &a, 0)
				case n < 45:
					g.emit(fsm.IPAddressAllocateType, &api.IPAddress{BlockID: sn.ID}, 0)
				case n < 60:
					ips := r.IPAddressList(sn.ID)
					id := pick(g.gen, ips)
					u := api.IPAddress{Meta: api.Meta{ID: id}, Name: g.name("ip", 5), MACAddress: []string{"", "52:54:00:00:00:01", "bad"}[g.rng.IntN(3)]}
					if len(ips) > 0 && g.rng.IntN(2) == 0 {
						u.PublicIPID = ips[g.rng.IntN(len(ips))].ID
					}
					g.emit(fsm.IPAddressUpdateType, &u, 0)
				case n < 68:
					g.emit(fsm.IPAddressDeleteType, state.IPRef{ID: pick(g.gen, r.IPAddressList(sn.ID))}, 0)
				case n < 85:
					cidr := fmt.Sprintf("198.%d.%d.0/%d", 18+g.rng.IntN(2), g.rng.IntN(4), 22+g.rng.IntN(3))
					if g.rng.IntN(10) == 0 {
						cidr = "198.18.0.0/33"
					}
					g.emit(tables[g.rng.IntN(2)], &api.CIXListEntry{CIDR: cidr, Comment: g.name("c", 3)}, 0)
				default:
					if g.rng.IntN(2) == 0 {
						g.emit(fsm.CIXBlacklistDeleteType, fsm.IDPayload{ID: pick(g.gen, r.CIXList(state.CIXBlacklist))}, 0)
					} else {
						g.emit(fsm.CIXWhitelistDeleteType, fsm.IDPayload{ID: pick(g.gen, r.CIXList(state.CIXWhitelist))}, 0)
					}
				}
			}
			for _, typ := range []fsm.MessageType{fsm.ASNUpdateType, fsm.IPAddressUpdateType, fsm.CIXBlacklistCreateType,
				fsm.CIXBlacklistDeleteType, fsm.CIXWhitelistCreateType, fsm.CIXWhitelistDeleteType} {
				if g.types[typ] == 0 {
					t.Errorf("type %d never emitted", typ)
				}
			}
			// public_ip is one-to-one and names live addresses.
			seen := map[uint64]uint64{}
			for _, ip := range g.read().IPAddressListAll() {
				if ip.PublicIPID == 0 {
					continue
				}
				if _, ok := g.read().IPAddress(ip.PublicIPID); !ok {
					t.Errorf("address %d: public_ip_id %d does not exist", ip.ID, ip.PublicIPID)
				}
				if o, dup := seen[ip.PublicIPID]; dup {
					t.Errorf("addresses %d and %d share public IP %d", o, ip.ID, ip.PublicIPID)
				}
				seen[ip.PublicIPID] = ip.ID
			}

			a, b := newFSM(), newFSM()
			ra, rb := replay(a, g.log), replay(b, g.log)
			for i := range ra {
				if ra[i] != rb[i] {
					t.Fatalf("entry %d: results differ:\n A %s\n B %s", i, ra[i], rb[i])
				}
			}
			snapA := persist(t, a)
			if !bytes.Equal(snapA, persist(t, b)) || !bytes.Equal(snapA, persist(t, g.scratch)) {
				t.Fatal("snapshots differ")
			}
			mid := len(g.log) / 2
			d := newFSM()
			replay(d, g.log[:mid])
			e := newFSM()
			if err := e.Restore(io.NopCloser(bytes.NewReader(persist(t, d)))); err != nil {
				t.Fatal(err)
			}
			re := replay(e, g.log[mid:])
			for i := range re {
				if re[i] != ra[mid+i] {
					t.Fatalf("entry %d after restore differs:\n full     %s\n restored %s", mid+i, ra[mid+i], re[i])
				}
			}
			if !bytes.Equal(snapA, persist(t, e)) {
				t.Fatal("state after restore + replay differs")
			}
		})
	}
}
