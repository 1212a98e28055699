package state

import (
	"encoding/binary"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
)

// uintField and stringField are go-memdb's UintFieldIndex and
// StringFieldIndex with the field found once per type: memdb's own look it
// up by name (reflect's FieldByName, which walks embedded structs such as
// api.Meta) on every insert, which was a tenth of the leader's CPU under
// allocation load. Keys and FromArgs are memdb's, unchanged.
type uintField struct {
	memdb.UintFieldIndex
	pos      fieldPos
	skipZero bool // a zero value is no value (optionalRefIndex)
}

type stringField struct {
	memdb.StringFieldIndex
	pos fieldPos
}

func uintFieldIndex(field string) *uintField {
	return &uintField{UintFieldIndex: memdb.UintFieldIndex{Field: field}}
}

func stringFieldIndex(field string, lowercase bool) *stringField {
	return &stringField{StringFieldIndex: memdb.StringFieldIndex{Field: field, Lowercase: lowercase}}
}

// fieldPos caches the position of a field in the last struct type seen.
type fieldPos struct {
	last atomic.Pointer[typePos]
}

type typePos struct {
	t     reflect.Type
	index []int
}

// field returns obj's field, or false when obj is not a pointer to (or a)
// struct with it.
func (p *fieldPos) field(obj any, name string) (reflect.Value, bool) {
	v := reflect.Indirect(reflect.ValueOf(obj))
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	tp := p.last.Load()
	if tp == nil || tp.t != v.Type() {
		f, ok := v.Type().FieldByName(name)
		if !ok {
			return reflect.Value{}, false
		}
		tp = &typePos{t: v.Type(), index: f.Index}
		p.last.Store(tp)
	}
	fv, err := v.FieldByIndexErr(tp.index) // nil embedded pointer: error
	return fv, err == nil
}

func (u *uintField) FromObject(obj any) (bool, []byte, error) {
	fv, ok := u.pos.field(obj, u.Field)
	if !ok {
		return u.UintFieldIndex.FromObject(obj) // memdb's errors
	}
	size, ok := memdb.IsUintType(fv.Kind())
	if !ok {
		return u.UintFieldIndex.FromObject(obj)
	}
	if u.skipZero && fv.Uint() == 0 {
		return false, nil, nil
	}
	buf := make([]byte, size)
	switch size {
	case 1:
		buf[0] = uint8(fv.Uint())
	case 2:
		binary.BigEndian.PutUint16(buf, uint16(fv.Uint()))
	case 4:
		binary.BigEndian.PutUint32(buf, uint32(fv.Uint()))
	default:
		binary.BigEndian.PutUint64(buf, fv.Uint())
	}
	return true, buf, nil
}

func (s *stringField) FromObject(obj any) (bool, []byte, error) {
	fv, ok := s.pos.field(obj, s.Field)
	if !ok || (fv.Kind() != reflect.String && fv.Kind() != reflect.Pointer) {
		return s.StringFieldIndex.FromObject(obj)
	}
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			return false, []byte{}, nil
		}
		fv = fv.Elem()
		if fv.Kind() != reflect.String {
			return s.StringFieldIndex.FromObject(obj)
		}
	}
	val := fv.String()
	if val == "" {
		return false, nil, nil
	}
	if s.Lowercase {
		val = strings.ToLower(val)
	}
	b := make([]byte, len(val)+1)
	copy(b, val) // null-terminated, as memdb's
	return true, b, nil
}
