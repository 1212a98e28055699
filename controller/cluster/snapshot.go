package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// SnapshotValidator checks a snapshot stream without touching live state:
// typically it decodes the stream exactly as FSM.Restore would, into scratch
// state. It returns an error if the bytes are not a snapshot FSM.Restore
// will accept.
//
// It also returns the raft index the snapshot was taken at, if the FSM's
// format records it (0 otherwise). The restored state is given a raft index
// above it, so indexes stored inside the state (created/modified indexes,
// blocking-query indexes) never run backwards after a restore into a younger
// cluster.
type SnapshotValidator func(r io.Reader) (index uint64, err error)

// ValidatingFSM is an FSM that can validate snapshots itself.
// SnapshotRestore uses it when called with a nil validator.
type ValidatingFSM interface {
	raft.FSM
	ValidateSnapshot(r io.Reader) (index uint64, err error)
}

// SnapshotSave writes a snapshot of the FSM to w: the FSM's own snapshot
// bytes (what FSMSnapshot.Persist writes), nothing added. On the leader it
// first runs a barrier, so the snapshot contains every write committed before
// the call. On a follower it contains what the follower has applied; if the
// follower has applied nothing since it started it is the newest stored
// snapshot.
//
// raft writes the snapshot to the node's snapshot store as a side effect
// (and may compact its log), exactly as a scheduled snapshot would.
func (c *Cluster) SnapshotSave(ctx context.Context, w io.Writer) error {
	if c.IsLeader() {
		// The barrier makes the FSM's last applied index current, which also
		// gets past raft's "wait until the configuration entry has been
		// applied" refusal after a membership change.
		if err := c.Barrier(ctx); err != nil {
			return fmt.Errorf("cluster: snapshot: barrier: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	var rc io.ReadCloser
	f := c.raft.Snapshot()
	switch err := f.Error(); {
	case err == nil:
		_, rc, err = f.Open()
		if err != nil {
			return fmt.Errorf("cluster: snapshot: open: %w", err)
		}
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		metas, lerr := c.snaps.List()
		if lerr != nil {
			return fmt.Errorf("cluster: snapshot: list: %w", lerr)
		}
		if len(metas) == 0 {
			return fmt.Errorf("cluster: snapshot: %w", err)
		}
		_, rc, err = c.snaps.Open(metas[0].ID)
		if err != nil {
			return fmt.Errorf("cluster: snapshot: open %s: %w", metas[0].ID, err)
		}
	default:
		return fmt.Errorf("cluster: snapshot: %w", c.mapRaftErr(err))
	}
	defer rc.Close()

	if _, err := io.Copy(w, ctxReader{ctx, rc}); err != nil {
		return fmt.Errorf("cluster: snapshot: copy: %w", err)
	}
	return nil
}

// SnapshotRestore replaces the cluster's FSM state with a snapshot written
// by SnapshotSave. Leader only: it waits for leadership like Apply, and
// returns *ErrNotLeader when another node leads. On success every node's FSM
// holds the restored state (followers get it by snapshot install).
//
// Validation comes first, because of what raft does with the bytes: Restore
// copies them into the snapshot store and then feeds them to FSM.Restore, and
// if FSM.Restore returns an error raft panics (its FSM would be in an unknown
// state), and the bad snapshot would stay the newest on disk. So the stream
// is spooled to a temporary file in the raft directory, validate (or, when
// nil, the FSM's ValidateSnapshot) reads it end to end, and only if it passes
// is the file handed to raft. A snapshot that fails validation is refused
// with ErrInvalidSnapshot and nothing changes. With neither a validator nor a
// ValidatingFSM the restore is refused: an unvalidated restore can crash the
// node.
//
// FSM.Restore must still validate while it reads and must not change live
// state on error (build new state aside and swap it in at the end), since the
// validator and the FSM could disagree; but it should never see bytes the
// validator refused.
//
// Restore is meant for disaster recovery into a fresh or quiesced cluster:
// commands in flight are aborted (raft.ErrAbortedByRestore).
func (c *Cluster) SnapshotRestore(ctx context.Context, r io.Reader, validate SnapshotValidator) error {
	if validate == nil {
		vf, ok := c.fsm.(ValidatingFSM)
		if !ok {
			return errors.New("cluster: restore: no snapshot validator (pass one, or give New an FSM with ValidateSnapshot)")
		}
		validate = vf.ValidateSnapshot
	}
	if err := c.awaitLeadership(ctx, time.Now().Add(c.cfg.ApplyTimeout)); err != nil {
		return err
	}

	tmp, err := os.CreateTemp(c.dir, restoreSpool)
	if err != nil {
		return fmt.Errorf("cluster: restore: spool: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	size, err := io.Copy(tmp, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("cluster: restore: spool: %w", err)
	}
	if size == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidSnapshot)
	}

	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cluster: restore: %w", err)
	}
	index, err := validate(bufio.NewReader(tmp))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// Make sure the configuration is committed (raft refuses to restore while
	// a membership change is in flight) and we are still the leader.
	if err := c.Barrier(ctx); err != nil {
		return fmt.Errorf("cluster: restore: barrier: %w", err)
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return c.mapRaftErr(err)
	}
	// raft uses Version, Index and Size; it stores the current configuration
	// with the snapshot, not the one in meta, and gives the restored state
	// index max(Index, last index)+1.
	meta := &raft.SnapshotMeta{
		Version:            raft.SnapshotVersionMax,
		ID:                 "user-restore",
		Index:              index,
		Term:               c.raft.CurrentTerm(),
		Configuration:      cf.Configuration(),
		ConfigurationIndex: cf.Index(),
		Size:               size,
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cluster: restore: %w", err)
	}
	c.logger.Info("restoring snapshot", "bytes", size, "snapshot_index", index)
	if err := c.raft.Restore(meta, bufio.NewReader(tmp), enqueueTimeout(ctx)); err != nil {
		return fmt.Errorf("cluster: restore: %w", c.mapRaftErr(err))
	}
	c.logger.Info("snapshot restored", "index", c.raft.LastIndex())
	return nil
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// restoreSpool is the pattern of SnapshotRestore's temporary file in the
// raft directory.
const restoreSpool = "restore-*.tmp"

// removeInterrupted deletes what a snapshot or a restore cut short by a
// crash (SIGKILL, power loss, a full disk) left behind: raft's unfinished
// snapshot directories (snapshots/*.tmp), which raft skips, with a
// warning, every time it lists its snapshots but never deletes, and
// SnapshotRestore's spool files (restore-*.tmp). Each can be as large as the
// whole state. It runs while this node holds raft.db's lock and before
// raft starts, so nothing is writing them; what it removes is logged once.
func removeInterrupted(raftDir, snapDir string, log hclog.Logger) {
	// The names are matched in the directories as they are read, not
	// globbed: a data dir's path may hold glob characters (node[12]), and
	// a glob of it would match other nodes' data dirs (node1, node2).
	var paths []string
	for _, p := range []struct{ dir, pattern string }{{snapDir, "*" + tmpSuffix}, {raftDir, restoreSpool}} {
		ents, _ := os.ReadDir(p.dir) // a missing dir has nothing to remove
		for _, e := range ents {
			if ok, _ := filepath.Match(p.pattern, e.Name()); ok { // the patterns are well-formed
				paths = append(paths, filepath.Join(p.dir, e.Name()))
			}
		}
	}
	var removed, failed []string
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			failed = append(failed, err.Error())
			continue
		}
		removed = append(removed, filepath.Base(p))
	}
	if len(removed) > 0 {
		log.Warn("removed what an interrupted snapshot or restore left in the data dir", "dir", raftDir, "removed", strings.Join(removed, ", "))
	}
	if len(failed) > 0 {
		log.Warn("cannot remove what an interrupted snapshot or restore left in the data dir", "errors", strings.Join(failed, "; "))
	}
}
