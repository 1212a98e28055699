package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/regentcloud/regent/pkg/api"
	"github.com/regentcloud/regent/pkg/atomicfile"
	"github.com/regentcloud/regent/pkg/client"
	"golang.org/x/sys/unix"
)

// Files of the agent's identity in data_dir.
const (
	// agentIDFile holds the agent's instance id: 32 hex digits, made at
	// the first start and kept across restarts.
	agentIDFile = "agent-id"
	// lockFile is flocked by the running agent and holds its pid.
	lockFile = "agent.lock"
)

// lockDataDir takes an exclusive, non-blocking lock on data_dir's
// agent.lock and writes this process's pid into it, so that a second
// agent on the same data_dir (which would act as the same server and
// build the same VMs) fails at once, naming the holder. The returned
// function releases it (the kernel does when the process ends).
func lockDataDir(dir string) (func(), error) {
	// 0711 as the systemd unit makes it (QEMU gets through to the disks)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data_dir lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data_dir lock %s: %w", path, err)
		}
		holder := "another regent-agent"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder += " (pid " + strconv.Itoa(pid) + ")"
			}
		}
		return nil, fmt.Errorf("data_dir %s is in use: %s holds the lock %s; two agents on one data_dir would act as one server "+
			"and build the same VMs: stop the other agent, or give this one its own data_dir", dir, holder, path)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// machineIDPath is the host's machine id (systemd's, made at a host's
// first boot; a tested variable).
var machineIDPath = "/etc/machine-id"

// machineID is the host's machine id, "" when it has none.
func machineID() string {
	b, err := os.ReadFile(machineIDPath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loadAgentID returns the agent's instance id from data_dir's agent-id,
// making it (128 random bits in hex, written atomically, mode 0600) at the
// first start. Only the running agent, which holds the data_dir lock,
// calls it. A file that is not an id is an error, not replaced: the
// controllers know this agent by it.
//
// agent-id.machine records the machine id of the host that made the id (a
// file of its own, so that an older agent still reads agent-id). A host
// cloned from an image that held a data_dir would otherwise send the same
// id as its original and be taken for it: where the recorded machine id
// is not this host's (machine not ""), a new id is made and the old one
// returned as replaced. An id without a recorded machine id (an older
// agent's) is kept, and this host's recorded.
func loadAgentID(dir, machine string) (id, replaced string, err error) {
	path := filepath.Join(dir, agentIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id = strings.TrimSpace(string(b))
		if !validAgentID(id) {
			return "", "", fmt.Errorf("%s does not hold an agent id (32 hex digits); remove it and a new one is made", path)
		}
		if machine == "" {
			return id, "", nil
		}
		made, err := os.ReadFile(path + machineSuffix)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return id, "", writeFile(path+machineSuffix, machine)
		case err != nil:
			return "", "", fmt.Errorf("agent id: %w", err)
		case strings.TrimSpace(string(made)) == machine:
			return id, "", nil
		}
		replaced = id
	case !errors.Is(err, os.ErrNotExist):
		return "", "", fmt.Errorf("agent id: %w", err)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("agent id: %w", err)
	}
	id = hex.EncodeToString(raw)
	if err := writeFile(path, id); err != nil {
		return "", "", err
	}
	if machine != "" {
		return id, replaced, writeFile(path+machineSuffix, machine)
	}
	return id, replaced, nil
}

// machineSuffix names the file beside agent-id that holds the machine id
// of the host that made it.
const machineSuffix = ".machine"

// writeFile writes one line, atomically, mode 0600.
func writeFile(path, line string) error {
	if err := atomicfile.Write(path, []byte(line+"\n"), 0o600); err != nil {
		return fmt.Errorf("agent id: %w", err)
	}
	return nil
}

// validAgentID reports whether id is an instance id as loadAgentID makes
// them.
func validAgentID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// isAgentConflict reports whether err is the controller's refusal of a
// call for a server or router another live agent instance holds.
func isAgentConflict(err error) bool {
	var e *api.Error
	return client.IsConflict(err) && errors.As(err, &e) && e.ErrorCode == api.ErrAgentConflict
}
