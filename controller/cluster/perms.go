package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// The data dir holds the whole state (token hashes, users, tenants' data,
// VPN keys in clear in snapshots): only its owner may read it. Directories
// are 0700 and files 0600: neither has a group or other bit.
const (
	dirMode     = 0o700
	groupOthers = 0o077
)

// snapshotStore is raft's FileSnapshotStore with owner-only modes. raft
// makes each snapshot directory 0755 and creates meta.json and state.bin
// with os.Create (0666 less the umask, 0644 usually): Create takes those
// bits away before raft writes any state into the snapshot. Every snapshot
// goes through Create: the ones raft takes, a restore (raft copies the
// restored stream into a new snapshot) and a snapshot a follower receives
// from the leader. meta.json is rewritten in place when the snapshot is
// finished (os.Create truncates and keeps the mode), and the directory is
// renamed, which keeps it too.
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir string // <DataDir>/raft/snapshots
}

// tmpSuffix is the suffix of a snapshot directory raft is still writing
// (raft's own tmpSuffix, unexported).
const tmpSuffix = ".tmp"

func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	if err := restrictTree(filepath.Join(s.dir, sink.ID()+tmpSuffix)); err != nil {
		_ = sink.Cancel()
		return nil, fmt.Errorf("cluster: snapshot: %w", err)
	}
	return sink, nil
}

// restrictTree takes the group and other bits off dir and every directory
// and regular file under it.
func restrictTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		_, err = restrict(path, d)
		return err
	})
}

// restrict takes the group and other bits off path (a directory or a
// regular file; anything else is left alone) and reports whether it had
// any.
func restrict(path string, d fs.DirEntry) (bool, error) {
	if !d.IsDir() && !d.Type().IsRegular() {
		return false, nil
	}
	info, err := d.Info()
	if err != nil {
		return false, err
	}
	mode := info.Mode().Perm()
	if mode&groupOthers == 0 {
		return false, nil
	}
	return true, os.Chmod(path, mode&^groupOthers)
}

// maxTightenedLogged bounds the paths the start-up log line names.
const maxTightenedLogged = 16

// tightenRaftDir takes the group and other bits off the raft directory
// (<DataDir>/raft, or where it links to) and every directory and regular
// file under it (links under it are not followed), and logs once what it
// changed: raft state written before the node made it owner-only (raft's
// snapshots were 0755/0644) or copied with looser modes. Only the raft
// directory: the data dir may be shared by mistake (data_dir = "/var/lib"),
// and the node does not touch what is not its own. A path it cannot change
// is logged and left; it does not stop the node.
func tightenRaftDir(raftDir string, log hclog.Logger) {
	root, err := filepath.EvalSymlinks(raftDir)
	if err != nil {
		log.Warn("cannot check the permissions of the raft state", "dir", raftDir, "error", err)
		return
	}
	var tightened, failed []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", path, err))
			return nil
		}
		changed, err := restrict(path, d)
		switch {
		case err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", path, err))
		case changed:
			rel, _ := filepath.Rel(root, path)
			tightened = append(tightened, filepath.Join(filepath.Base(raftDir), rel))
		}
		return nil
	})
	if len(tightened) > 0 {
		shown := tightened
		if len(shown) > maxTightenedLogged {
			shown = append(shown[:maxTightenedLogged:maxTightenedLogged], "…")
		}
		log.Warn("raft state in the data dir was readable by group or others: made it owner-only (directories 0700, files 0600); it holds the whole state",
			"dir", filepath.Dir(raftDir), "paths", len(tightened), "changed", strings.Join(shown, ", "))
	}
	if len(failed) > 0 {
		log.Warn("cannot make these paths of the raft state owner-only (another owner?): fix them by hand",
			"dir", raftDir, "errors", strings.Join(failed, "; "))
	}
}
