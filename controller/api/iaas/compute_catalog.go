package iaas

// The catalogue (storage_type, image, region_image, server_type) and the
// region's hardware (server, interface, router). Codes: 1xx body
// validation, 201 the permission table, 202 another region's hardware.

import (
	"encoding/hex"
	"net/url"
	"strings"

	"github.com/regentcloud/regent/controller/api"
	"github.com/regentcloud/regent/controller/api/query"
	"github.com/regentcloud/regent/controller/fsm"
	"github.com/regentcloud/regent/controller/state"
	wire "github.com/regentcloud/regent/pkg/api"
)

func nameField(fe wire.FieldErrors, q *api.Request, dst *string, v *string, partial bool) {
	if v == nil {
		if !partial {
			fe.Add("name", q.Code(101), "This field is required.")
		}
		return
	}
	n := strings.TrimSpace(*v)
	if msg := nameFault(&n, 50); msg != "" {
		fe.Add("name", q.Code(101), "%s", msg)
		return
	}
	*dst = n
}

func registerStorageType(a *api.API) {
	api.Register(a, api.Service[*wire.StorageType]{
		App: App, Name: "storage_type", Tables: []string{state.StorageTypes},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String}),
			Ordering: []string{"name", "id", "created", "updated"}},
		All: (*state.ReadTxn).StorageTypeList,
		Get: (*state.ReadTxn).StorageType,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.NameInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			s := &wire.StorageType{}
			nameField(fe, q, &s.Name, in.Name, false)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.StorageTypeCreateType, s)
		},
		Update: func(q *api.Request, cur *wire.StorageType, partial bool) (*fsm.Command, error) {
			var in wire.NameInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			s := *cur
			nameField(fe, q, &s.Name, in.Name, partial)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.StorageTypeUpdateType, &s)
		},
	})
}

func imageFields(fe wire.FieldErrors, q *api.Request, img *wire.Image, in *wire.ImageInput, partial bool) {
	if !partial {
		*img = wire.Image{Meta: img.Meta, OSVariant: "rhel6"}
		if in.DisplayName == nil {
			fe.Add("display_name", q.Code(101), "This field is required.")
		}
		if in.ServerTypeID == nil {
			fe.Add("server_type_id", q.Code(103), "This field is required.")
		}
	}
	text(fe, q, "display_name", in.DisplayName, 50, 102)
	text(fe, q, "filename", in.Filename, 100, 105)
	text(fe, q, "answer_file_name", in.AnswerFileName, 50, 106)
	text(fe, q, "os_variant", in.OSVariant, 25, 107)
	api.Set(&img.DisplayName, in.DisplayName)
	api.Set(&img.Filename, in.Filename)
	api.Set(&img.AnswerFileName, in.AnswerFileName)
	api.Set(&img.OSVariant, in.OSVariant)
	api.Set(&img.CloudInit, in.CloudInit)
	api.Set(&img.MultipleIPs, in.MultipleIPs)
	api.Set(&img.Public, in.Public)
	api.Set(&img.Windows, in.Windows)
	api.Set(&img.ServerTypeID, in.ServerTypeID)
	if in.Source != nil {
		*in.Source = strings.TrimSpace(*in.Source)
		if !validImageSource(*in.Source) {
			fe.Add("source", q.Code(108), "Enter a file path or a file://, http:// or https:// URL of at most 1000 characters.")
		}
	}
	if in.SHA256 != nil {
		*in.SHA256 = strings.ToLower(strings.TrimSpace(*in.SHA256))
		if *in.SHA256 != "" && !validSHA256(*in.SHA256) {
			fe.Add("sha256", q.Code(109), "Enter the SHA-256 digest of the image as 64 hexadecimal digits.")
		}
	}
	api.Set(&img.Source, in.Source)
	api.Set(&img.SHA256, in.SHA256)
}

// validImageSource accepts "" (no source yet), a file path (absolute, or
// relative to the agent's image directory) and file, http and https URLs.
func validImageSource(s string) bool {
	if s == "" {
		return true
	}
	if len(s) > 1000 || strings.ContainsAny(s, "\x00\n\r") {
		return false
	}
	if !strings.Contains(s, "://") {
		return true
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "file":
		return u.Path != ""
	case "http", "https":
		return u.Host != ""
	}
	return false
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func registerImage(a *api.API) {
	api.Register(a, api.Service[*wire.Image]{
		App: App, Name: "image", Tables: []string{state.Images},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"display_name": query.String, "filename": query.String,
			"os_variant": query.String, "server_type_id": query.Number, "cloud_init": query.Bool, "public": query.Bool}),
			Ordering: []string{"display_name", "id", "created", "updated"}},
		All: (*state.ReadTxn).ImageList,
		Get: (*state.ReadTxn).Image,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.ImageInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			img := &wire.Image{}
			imageFields(fe, q, img, &in, false)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.ImageCreateType, img)
		},
		Update: func(q *api.Request, cur *wire.Image, partial bool) (*fsm.Command, error) {
			var in wire.ImageInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			img := *cur
			imageFields(fe, q, &img, &in, partial)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.ImageUpdateType, &img)
		},
	})
}

func registerRegionImage(a *api.API) {
	api.Register(a, api.Service[*wire.RegionImage]{
		App: App, Name: "region_image", Tables: []string{state.RegionImages},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"region_id": query.Number, "image_id": query.Number}),
			Ordering: []string{"id", "region_id", "image_id", "created", "updated"}},
		All: (*state.ReadTxn).RegionImageList,
		Get: (*state.ReadTxn).RegionImage,
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.RegionImageInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			required(fe, q, "region_id", in.RegionID != nil, 101)
			required(fe, q, "image_id", in.ImageID != nil, 103)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			if err := denyRegion(q, *in.RegionID); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, 0); err != nil {
				return nil, err
			}
			return q.Command(fsm.RegionImageCreateType, &wire.RegionImage{RegionID: *in.RegionID, ImageID: *in.ImageID})
		},
		Delete: func(q *api.Request, cur *wire.RegionImage) (*fsm.Command, error) {
			if err := denyRegion(q, cur.RegionID); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, 0); err != nil {
				return nil, err
			}
			return q.Command(fsm.RegionImageDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}

func registerServerType(a *api.API) {
	api.Register(a, api.Service[*wire.ServerType]{
		App: App, Name: "server_type", Tables: []string{},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"name": query.String}),
			Ordering: []string{"id", "name"}},
		All: func(*state.ReadTxn) []*wire.ServerType { return wire.ServerTypes },
		Get: func(_ *state.ReadTxn, id uint64) (*wire.ServerType, bool) {
			for _, s := range wire.ServerTypes {
				if s.ID == id {
					return s, true
				}
			}
			return nil, false
		},
	})
}

func serverFields(fe wire.FieldErrors, q *api.Request, s *wire.Server, in *wire.ServerInput, create, partial bool) {
	if create || !partial {
		for _, f := range []struct {
			name    string
			present bool
			n       int
		}{{"type_id", in.TypeID != nil, 103}, {"storage_type_id", in.StorageTypeID != nil, 105},
			{"cores", in.Cores != nil, 107}, {"ram", in.RAM != nil, 108}, {"gb", in.GB != nil, 109}} {
			required(fe, q, f.name, f.present, f.n)
		}
	}
	for _, f := range []struct {
		name  string
		v     *int
		n     int
		limit int
	}{{"cores", in.Cores, 107, wire.MaxCores}, {"ram", in.RAM, 108, wire.MaxRAMGB}, {"gb", in.GB, 109, wire.MaxStorageGB}} {
		if f.v != nil && (*f.v < 1 || *f.v > f.limit) {
			fe.Add(f.name, q.Code(f.n), "%s must be an integer from 1 to %d.", f.name, f.limit)
		}
	}
	text(fe, q, "asset_tag", in.AssetTag, 64, 110)
	text(fe, q, "model", in.Model, 64, 111)
	if !create && !partial {
		// PUT replaces: what it leaves out takes its create default.
		s.Enabled, s.AssetTag, s.Model = true, "", ""
	}
	api.Set(&s.TypeID, in.TypeID)
	api.Set(&s.StorageTypeID, in.StorageTypeID)
	api.Set(&s.Cores, in.Cores)
	api.Set(&s.RAM, in.RAM)
	api.Set(&s.GB, in.GB)
	api.Set(&s.Enabled, in.Enabled)
	api.Set(&s.AssetTag, in.AssetTag)
	api.Set(&s.Model, in.Model)
}

func registerServer(a *api.API, opts Options) {
	api.Register(a, api.Service[*wire.Server]{
		App: App, Name: "server", Tables: []string{state.Servers},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"region_id": query.Number, "type_id": query.Number,
			"storage_type_id": query.Number, "cores": query.Number, "ram": query.Number, "gb": query.Number,
			"enabled": query.Bool, "asset_tag": query.String, "model": query.String,
			"hostname": query.String, "vtep": query.CIDR, "status": query.String}),
			Ordering: []string{"id", "region_id", "type_id", "created", "updated"}},
		All:     (*state.ReadTxn).ServerList,
		Get:     (*state.ReadTxn).Server,
		Visible: func(q *api.Request, s *wire.Server) bool { return seesRegion(q, s.RegionID) },
		Expand:  serverView(opts.AgentHealth, a.Now),
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.ServerInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			s := &wire.Server{Enabled: true}
			if in.RegionID == nil && q.P.RegionID != 0 {
				in.RegionID = &q.P.RegionID
			}
			required(fe, q, "region_id", in.RegionID != nil, 101)
			serverFields(fe, q, s, &in, true, false)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			s.RegionID = *in.RegionID
			if err := denyRegion(q, s.RegionID); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, 0); err != nil {
				return nil, err
			}
			return q.Command(fsm.ServerCreateType, s)
		},
		Update: func(q *api.Request, cur *wire.Server, partial bool) (*fsm.Command, error) {
			var in wire.ServerInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, cur.ID); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.RegionID != nil && *in.RegionID != cur.RegionID {
				fe.Add("region_id", q.Code(101), "A server cannot move to another region.")
			}
			s := *cur
			serverFields(fe, q, &s, &in, false, partial)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.ServerUpdateType, &s)
		},
	})
}

func interfaceFields(fe wire.FieldErrors, q *api.Request, i *wire.ServerInterface, in *wire.InterfaceInput) {
	text(fe, q, "hostname", in.Hostname, 253, 103)
	text(fe, q, "details", in.Details, 1024, 106)
	api.Set(&i.Hostname, in.Hostname)
	api.Set(&i.Details, in.Details)
	api.Set(&i.Enabled, in.Enabled)
	if in.IPAddress != nil {
		if a, err := parseAddr(*in.IPAddress); err != nil {
			fe.Add("ip_address", q.Code(104), "%q is not an IP address.", *in.IPAddress)
		} else {
			i.IPAddress = a
		}
	}
	if in.MACAddress != nil {
		if m, err := parseMAC(*in.MACAddress); err != nil {
			fe.Add("mac_address", q.Code(105), "%q is not a MAC address.", *in.MACAddress)
		} else {
			i.MACAddress = m
		}
	}
}

func registerInterface(a *api.API) {
	api.Register(a, api.Service[*wire.ServerInterface]{
		App: App, Name: "interface", Tables: []string{state.ServerInterfaces},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"server_id": query.Number, "region_id": query.Number,
			"hostname": query.String, "ip_address": query.CIDR, "mac_address": query.String, "enabled": query.Bool}),
			Ordering: []string{"id", "server_id", "hostname", "ip_address", "created", "updated"}},
		All:     (*state.ReadTxn).ServerInterfaceList,
		Get:     (*state.ReadTxn).ServerInterface,
		Visible: func(q *api.Request, i *wire.ServerInterface) bool { return seesRegion(q, i.RegionID) },
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.InterfaceInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			i := &wire.ServerInterface{Enabled: true}
			if required(fe, q, "server_id", in.ServerID != nil, 101) {
				if s, ok := q.Txn.Server(*in.ServerID); !ok || !seesRegion(q, s.RegionID) {
					fe.Add("server_id", q.Code(102), "Server %d does not exist.", *in.ServerID)
				} else {
					i.ServerID = s.ID
				}
			}
			interfaceFields(fe, q, i, &in)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, i.ServerID); err != nil {
				return nil, err
			}
			return q.Command(fsm.ServerInterfaceCreateType, i)
		},
		Update: func(q *api.Request, cur *wire.ServerInterface, partial bool) (*fsm.Command, error) {
			var in wire.InterfaceInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, cur.ServerID); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.ServerID != nil && *in.ServerID != cur.ServerID {
				fe.Add("server_id", q.Code(102), "An interface cannot move to another server.")
			}
			i := *cur
			if !partial {
				i.Hostname, i.IPAddress, i.MACAddress, i.Details, i.Enabled = "", "", "", "", true
			}
			interfaceFields(fe, q, &i, &in)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.ServerInterfaceUpdateType, &i)
		},
		Delete: func(q *api.Request, cur *wire.ServerInterface) (*fsm.Command, error) {
			if err := denyOtherServer(q, cur.ServerID); err != nil {
				return nil, err
			}
			return q.Command(fsm.ServerInterfaceDeleteType, fsm.IDPayload{ID: cur.ID})
		},
	})
}

func routerFields(fe wire.FieldErrors, q *api.Request, r *wire.Router, in *wire.RouterInput) {
	switch {
	case in.Phantom != nil && *in.Phantom:
		if in.Capacity.Set && !in.Capacity.Null {
			fe.Add("capacity", q.Code(105), "A phantom router has no capacity.")
		}
		r.Capacity = nil
	case in.Capacity.Null: // CloudCIX: capacity null is a phantom router
		r.Capacity = nil
	case in.Capacity.Set:
		if in.Capacity.V < 0 {
			fe.Add("capacity", q.Code(105), "capacity must be ≥ 0.")
		}
		c := in.Capacity.V
		r.Capacity = &c
	}
	if in.FloatingSubnetIDs != nil {
		r.FloatingSubnetIDs = append([]uint64{}, *in.FloatingSubnetIDs...)
	}
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{"asset_tag", in.AssetTag, &r.AssetTag}, {"model", in.Model, &r.Model}, {"username", in.Username, &r.Username},
		{"management_interface", in.ManagementInterface, &r.ManagementInterface},
		{"public_interface", in.PublicInterface, &r.PublicInterface},
		{"private_interface", in.PrivateInterface, &r.PrivateInterface}, {"oob_interface", in.OOBInterface, &r.OOBInterface}} {
		text(fe, q, f.name, f.v, 64, 106)
		api.Set(f.dst, f.v)
	}
	api.Set(&r.Enabled, in.Enabled)
}

func registerRouter(a *api.API, opts Options) {
	api.Register(a, api.Service[*wire.Router]{
		App: App, Name: "router", Tables: []string{state.Routers},
		Query: query.Spec{Fields: api.MetaFields(map[string]query.FieldType{"region_id": query.Number, "capacity": query.Number,
			"enabled": query.Bool, "asset_tag": query.String, "model": query.String,
			"hostname": query.String, "vtep": query.CIDR, "status": query.String}),
			Ordering: []string{"id", "region_id", "created", "updated"}},
		All:     (*state.ReadTxn).RouterList,
		Get:     (*state.ReadTxn).Router,
		Visible: func(q *api.Request, r *wire.Router) bool { return seesRegion(q, r.RegionID) },
		Expand:  routerView(opts.AgentHealth, a.Now),
		Create: func(q *api.Request) (*fsm.Command, error) {
			var in wire.RouterInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			r := &wire.Router{Enabled: true, FloatingSubnetIDs: []uint64{}}
			if in.RegionID == nil && q.P.RegionID != 0 {
				in.RegionID = &q.P.RegionID
			}
			required(fe, q, "region_id", in.RegionID != nil, 101)
			if !in.Capacity.Set && (in.Phantom == nil || !*in.Phantom) {
				fe.Add("capacity", q.Code(105), "capacity is required: a number, or null (or phantom: true) for a phantom router.")
			}
			routerFields(fe, q, r, &in)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			r.RegionID = *in.RegionID
			if err := denyRegion(q, r.RegionID); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, 0); err != nil {
				return nil, err
			}
			return q.Command(fsm.RouterCreateType, r)
		},
		Update: func(q *api.Request, cur *wire.Router, partial bool) (*fsm.Command, error) {
			var in wire.RouterInput
			if err := q.Decode(&in); err != nil {
				return nil, err
			}
			if err := denyOtherServer(q, 0); err != nil {
				return nil, err
			}
			fe := wire.FieldErrors{}
			if in.RegionID != nil && *in.RegionID != cur.RegionID {
				fe.Add("region_id", q.Code(101), "A router cannot move to another region.")
			}
			r := *cur
			if !partial {
				// PUT replaces what the operator sets (what the agent
				// reports stays): capacity is required as on create, the
				// rest left out takes its create default.
				if !in.Capacity.Set && (in.Phantom == nil || !*in.Phantom) {
					fe.Add("capacity", q.Code(105), "capacity is required: a number, or null (or phantom: true) for a phantom router.")
				}
				r.Enabled, r.FloatingSubnetIDs = true, []uint64{}
				r.AssetTag, r.Model, r.Username = "", "", ""
				r.ManagementInterface, r.PublicInterface, r.PrivateInterface, r.OOBInterface = "", "", "", ""
			}
			routerFields(fe, q, &r, &in)
			if err := fe.Err(); err != nil {
				return nil, err
			}
			return q.Command(fsm.RouterUpdateType, &r)
		},
	})
}
