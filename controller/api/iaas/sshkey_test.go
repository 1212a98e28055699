package iaas

import (
	"encoding/base64"
	"encoding/binary"
	"testing"
)

func sshBlob(parts ...[]byte) string {
	var b []byte
	for _, p := range parts {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestCheckSSHKey(t *testing.T) {
	ed := sshBlob([]byte("ssh-ed25519"), make([]byte, 32))
	good := []string{"ssh-ed25519 " + ed + " me@host", "ssh-ed25519 " + ed,
		"ssh-rsa " + sshBlob([]byte("ssh-rsa"), []byte{1, 0, 1}, make([]byte, 256)),
		"ecdsa-sha2-nistp256 " + sshBlob([]byte("ecdsa-sha2-nistp256"), []byte("nistp256"), append([]byte{4}, make([]byte, 64)...))}
	for _, k := range good {
		if err := checkSSHKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	bad := []string{"", "ssh-ed25519", "ssh-ed25519 !!!", "ssh-rsa " + ed, "ssh-dss " + sshBlob([]byte("ssh-dss")),
		"ssh-ed25519 " + sshBlob([]byte("ssh-ed25519"), make([]byte, 31)),
		"ssh-ed25519 " + sshBlob([]byte("ssh-ed25519"), make([]byte, 32), []byte("x")),
		"ssh-rsa " + sshBlob([]byte("ssh-rsa"), []byte{1, 0, 1}, make([]byte, 64))}
	for _, k := range bad {
		if err := checkSSHKey(k); err == nil {
			t.Errorf("%q accepted", k)
		}
	}
}
