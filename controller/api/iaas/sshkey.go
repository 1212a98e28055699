package iaas

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// checkSSHKey parses an OpenSSH public key line strictly: "<type> <base64
// blob> [comment]", a known type, a blob whose embedded type matches and
// whose fields have the sizes of that type, and nothing left over.
func checkSSHKey(line string) error {
	fields := strings.Fields(strings.TrimSpace(line))
	if len(fields) < 2 {
		return errors.New("a public key is \"<type> <base64 key> [comment]\"")
	}
	typ := fields[0]
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return errors.New("the key is not valid base64")
	}
	rest := blob
	next := func() ([]byte, bool) {
		if len(rest) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, false
		}
		v := rest[4 : 4+n]
		rest = rest[4+n:]
		return v, true
	}
	inner, ok := next()
	if !ok || string(inner) != typ {
		return errors.New("the key data does not match its type " + typ)
	}
	switch typ {
	case "ssh-ed25519":
		k, ok := next()
		if !ok || len(k) != 32 {
			return errors.New("an ed25519 key has 32 bytes")
		}
	case "ssh-rsa":
		e, ok1 := next()
		n, ok2 := next()
		if !ok1 || !ok2 || len(e) == 0 || len(n) < 1024/8 {
			return errors.New("an RSA key needs an exponent and a modulus of at least 1024 bits")
		}
	case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521":
		curve, ok1 := next()
		point, ok2 := next()
		size := map[string]int{"nistp256": 65, "nistp384": 97, "nistp521": 133}[string(curve)]
		if !ok1 || !ok2 || "ecdsa-sha2-"+string(curve) != typ || len(point) != size || point[0] != 4 {
			return errors.New("the ECDSA key data is invalid")
		}
	default:
		return errors.New("unsupported key type " + typ + ": use ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384/521")
	}
	if len(rest) != 0 {
		return errors.New("the key data has trailing bytes")
	}
	return nil
}
