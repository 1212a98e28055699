package systest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// createItem is one of the creates the leader-kill test sends.
type createItem struct {
	service string // "member" or "user"
	field   string // the unique name field
	name    string
}

// createOutcome is what became of one createItem.
type createOutcome struct {
	acked    bool      // 201 with an id in the body
	id       uint64    // from the 201
	index    uint64    // X-Regent-Index of the 201
	node     string    // node that answered 201
	sentAt   time.Time // when the successful attempt was sent
	ackedAt  time.Time // when its 201 arrived
	exists   bool      // a retry found the name taken: committed, not acknowledged
	gaveUp   bool
	attempts int
	lastErr  string
}

// TestLeaderKill is the acceptance test of the issue: it starts 3 real
// regent-controller processes on loopback ports and sends 300 create requests
// (members or users), spread over all three nodes. It kills the leader with
// SIGKILL midway. Afterwards, every acknowledged create is readable from both
// survivors: 0 lost. The test prints the time from the kill to the first
// accepted write on the new leader.
func TestLeaderKill(t *testing.T) {
	const (
		total   = 300
		clients = 8
	)
	c := startCluster(t, 3)
	oldLeader := c.leader(30 * time.Second)
	t.Logf("leader before the kill: %s", oldLeader.name)

	run := randomHex(3)
	items := make([]createItem, total)
	for i := range items {
		if i%2 == 0 {
			items[i] = createItem{service: "member", field: "name", name: fmt.Sprintf("lk-%s-member-%03d", run, i)}
		} else {
			items[i] = createItem{service: "user", field: "username", name: fmt.Sprintf("lk-%s-user-%03d", run, i)}
		}
	}
	outcomes := make([]createOutcome, total)
	hc := newClient(clients)

	var acked atomic.Int64
	var killAt time.Time
	killed := make(chan struct{})
	allDone := make(chan struct{})
	go func() { // the killer: SIGKILL the leader once half of the creates are acknowledged
		defer close(killed)
		for acked.Load() < total/2 {
			select {
			case <-allDone:
				return
			case <-time.After(time.Millisecond):
			}
		}
		killAt = time.Now()
		oldLeader.kill()
	}()

	work := make(chan int)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				outcomes[i] = sendCreate(c, hc, items[i], i)
				if outcomes[i].acked {
					acked.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	for i := range items {
		work <- i
	}
	close(work)
	wg.Wait()
	close(allDone)
	<-killed
	elapsed := time.Since(start)
	if killAt.IsZero() {
		t.Fatalf("the leader was never killed: only %d of %d creates were acknowledged", acked.Load(), total)
	}

	// Tally.
	var nAcked, nExists, nGaveUp, retried int
	var firstAfter time.Time
	var firstAfterIdx int = -1
	var maxIndexBeforeKill uint64
	for i, o := range outcomes {
		switch {
		case o.acked:
			nAcked++
			if o.ackedAt.Before(killAt) && o.index > maxIndexBeforeKill {
				maxIndexBeforeKill = o.index
			}
			if o.sentAt.After(killAt) && (firstAfter.IsZero() || o.ackedAt.Before(firstAfter)) {
				firstAfter, firstAfterIdx = o.ackedAt, i
			}
		case o.exists:
			nExists++
		case o.gaveUp:
			nGaveUp++
			t.Errorf("create %d (%s %q) gave up after %d attempts: %s", i, items[i].service, items[i].name, o.attempts, o.lastErr)
		}
		if o.attempts > 1 {
			retried++
		}
	}
	if firstAfterIdx < 0 {
		t.Fatalf("no create sent after the kill was accepted (%d acked, %d committed-unacknowledged, %d gave up)", nAcked, nExists, nGaveUp)
	}
	first := outcomes[firstAfterIdx]
	if first.index <= maxIndexBeforeKill {
		t.Errorf("first write after the kill has raft index %d, not above %d acknowledged before it", first.index, maxIndexBeforeKill)
	}
	killToWrite := firstAfter.Sub(killAt)
	newLeader := c.leader(30 * time.Second)
	t.Logf("%d creates from %d clients in %s: %d acknowledged, %d committed but unacknowledged (retry found the name taken), %d gave up, %d needed retries",
		total, clients, elapsed.Round(time.Millisecond), nAcked, nExists, nGaveUp, retried)
	t.Logf("old leader %s killed after %d acknowledged creates; new leader %s; first accepted write after the kill: create %d via %s, raft index %d",
		oldLeader.name, total/2, newLeader.name, firstAfterIdx, first.node, first.index)
	t.Logf("kill -> first accepted write on the new leader: %s", killToWrite.Round(time.Millisecond))
	fmt.Printf("leader-kill: kill -> first accepted write on the new leader: %s (%d acknowledged, 0 lost is checked next)\n",
		killToWrite.Round(time.Millisecond), nAcked)

	// Every acknowledged create must be readable from both survivors (stale,
	// local reads, after they catch up) and through the leader.
	survivors := c.followers(oldLeader)
	if len(survivors) != 2 {
		t.Fatalf("want 2 survivors, got %d", len(survivors))
	}
	lost := map[string][]string{}
	for _, n := range survivors {
		for i, o := range outcomes {
			if !o.acked {
				continue
			}
			path := fmt.Sprintf("/membership/%s/%d/?stale=true", items[i].service, o.id)
			if err := checkObject(c, n, path, items[i], o.id, 15*time.Second); err != nil {
				lost[n.name] = append(lost[n.name], err.Error())
				if len(lost[n.name]) > 20 {
					break // enough to show
				}
			}
		}
	}
	for i, o := range outcomes {
		if !o.acked {
			continue
		}
		path := fmt.Sprintf("/membership/%s/%d/", items[i].service, o.id)
		if err := checkObject(c, survivors[0], path, items[i], o.id, 5*time.Second); err != nil {
			lost["leader (via "+survivors[0].name+")"] = append(lost["leader (via "+survivors[0].name+")"], err.Error())
		}
	}
	for where, errs := range lost {
		t.Errorf("%d acknowledged creates not readable on %s: %s", len(errs), where, strings.Join(errs, "; "))
	}

	// The leader's listing holds every acknowledged create under its id and
	// every committed-but-unacknowledged one, each name exactly once, and
	// both survivors' local listings converge to the leader's.
	byService := map[string]map[string]uint64{}
	var listings = map[string]string{}
	for _, svc := range []string{"member", "user"} {
		all, err := c.listAll(survivors[0], c.token, svc, "")
		if err != nil {
			t.Fatal(err)
		}
		listings[svc] = canonical(all)
		names := map[string]uint64{}
		field := map[string]string{"member": "name", "user": "username"}[svc]
		for _, raw := range all {
			var obj map[string]any
			json.Unmarshal(raw, &obj)
			name, _ := obj[field].(string)
			id, _ := obj["id"].(float64)
			if prev, dup := names[name]; dup {
				t.Errorf("%s name %q is stored twice (ids %d and %v)", svc, name, prev, id)
			}
			names[name] = uint64(id)
		}
		byService[svc] = names
	}
	for i, o := range outcomes {
		id, ok := byService[items[i].service][items[i].name]
		switch {
		case o.acked && (!ok || id != o.id):
			t.Errorf("acknowledged %s %q (id %d) missing from the leader's listing (found id %d)", items[i].service, items[i].name, o.id, id)
		case o.exists && !ok:
			t.Errorf("%s %q was reported taken on retry but is not in the leader's listing", items[i].service, items[i].name)
		}
	}
	for _, n := range survivors {
		for _, svc := range []string{"member", "user"} {
			err := waitFor(30*time.Second, func() error {
				all, err := c.listAll(n, c.token, svc, "stale=true")
				if err != nil {
					return err
				}
				if got := canonical(all); got != listings[svc] {
					return fmt.Errorf("%s: stale %s listing differs from the leader's (%d vs %d bytes)", n.name, svc, len(got), len(listings[svc]))
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}
	}
	if !t.Failed() {
		t.Logf("0 lost: all %d acknowledged creates are readable on %s and %s (stale) and through the leader %s",
			nAcked, survivors[0].name, survivors[1].name, newLeader.name)
	}
}

// sendCreate sends one create, round-robin over the three nodes starting at
// node i%3, retrying on transport errors and 5xx against the next node.
func sendCreate(c *cluster, hc *http.Client, it createItem, i int) createOutcome {
	var o createOutcome
	body := map[string]string{it.field: it.name}
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; ; attempt++ {
		n := c.nodes[(i+attempt)%3]
		o.attempts++
		sent := time.Now()
		r := doHTTP(c.t.Context(), hc, n.URL(), c.token, http.MethodPost, "/membership/"+it.service+"/", body)
		switch {
		case r.Err == nil && r.Status == http.StatusCreated:
			id, err := createdID(r.Body)
			if err != nil {
				o.lastErr = fmt.Sprintf("201 without an id: %s", r.Body)
				o.gaveUp = true
				return o
			}
			o.acked, o.id, o.node, o.sentAt, o.ackedAt = true, id, n.name, sent, time.Now()
			o.index, _ = strconv.ParseUint(r.Header.Get("X-Regent-Index"), 10, 64)
			return o
		case r.Err == nil && r.Status == http.StatusBadRequest && attempt > 0 && nameTaken(r):
			// An earlier attempt whose outcome was unknown did commit.
			o.exists = true
			return o
		case r.Err == nil && r.Status < 500:
			o.lastErr = fmt.Sprintf("%s from %s", r, n.name)
			o.gaveUp = true
			return o
		}
		o.lastErr = fmt.Sprintf("%s from %s", r, n.name)
		if time.Now().After(deadline) {
			o.gaveUp = true
			return o
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nameTaken(r *resp) bool {
	switch r.errorCode() {
	case "membership_member_create_101", "membership_user_create_102":
		return true
	}
	return false
}

// checkObject polls path on n until it returns the object with id and the
// item's name.
func checkObject(c *cluster, n *node, path string, it createItem, id uint64, timeout time.Duration) error {
	var last string
	err := waitFor(timeout, func() error {
		r := c.do(n, http.MethodGet, path, nil)
		if r.Err != nil || r.Status != http.StatusOK {
			last = r.String()
			return fmt.Errorf("%s %d (%s): %s", it.service, id, it.name, last)
		}
		var v struct {
			Content map[string]any `json:"content"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			return err
		}
		if v.Content[it.field] != it.name {
			return fmt.Errorf("%s %d: %s is %v, want %q", it.service, id, it.field, v.Content[it.field], it.name)
		}
		return nil
	})
	return err
}
