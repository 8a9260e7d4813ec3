package etcdtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// WriteProbe writes through every member of a cluster every Every and
// measures, per member, the longest time between two accepted writes,
// except while a member is set aside (it is being restarted), and the
// longest time in which no member accepted one.
type WriteProbe struct {
	c       *Cluster
	t       testing.TB
	every   time.Duration
	mu      sync.Mutex
	targets map[string]*target
	// lastAny is the last write any member accepted; longestAny the
	// longest stretch in which no member accepted one.
	lastAny    time.Time
	longestAny time.Duration
	stop       chan struct{}
	wg         sync.WaitGroup
}

type target struct {
	member   *Member
	client   *clientv3.Client
	aside    bool
	lastOK   time.Time
	longest  time.Duration
	accepted int
}

// StartWriteProbe starts writing through each member every every; the
// probe stops when the test ends.
func StartWriteProbe(t testing.TB, c *Cluster, every time.Duration) *WriteProbe {
	t.Helper()
	p := &WriteProbe{c: c, t: t, every: every, targets: map[string]*target{}, stop: make(chan struct{}), lastAny: time.Now()}
	for _, m := range c.Members {
		p.targets[m.Name] = &target{member: m, client: p.dial(m), lastOK: time.Now()}
	}
	for _, tg := range p.targets {
		p.wg.Add(1)
		go p.write(tg)
	}
	t.Cleanup(p.close)
	return p
}

// dial connects to m's client URL as its backend.yml gives it now and
// waits for a first accepted write, so a new connection is no gap.
func (p *WriteProbe) dial(m *Member) *clientv3.Client {
	p.t.Helper()
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL(p.t)}, TLS: p.c.ClientTLS(),
		DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Put(ctx, "/probe/"+m.Name, "dial"); err != nil {
		cl.Close()
		p.t.Fatalf("probe: no write accepted through %s: %v", m.Name, err)
	}
	return cl
}

func (p *WriteProbe) write(tg *target) {
	defer p.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-p.stop:
			return
		case <-time.After(p.every):
		}
		p.mu.Lock()
		cl := tg.client
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		_, err := cl.Put(ctx, "/probe/"+tg.member.Name, fmt.Sprint(i))
		cancel()
		if err != nil {
			continue
		}
		now := time.Now()
		p.mu.Lock()
		if !tg.aside {
			tg.longest = max(tg.longest, now.Sub(tg.lastOK))
			tg.accepted++
		}
		tg.lastOK = now
		p.longestAny = max(p.longestAny, now.Sub(p.lastAny))
		p.lastAny = now
		p.mu.Unlock()
	}
}

// Aside stops measuring m while it is restarted.
func (p *WriteProbe) Aside(m *Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets[m.Name].aside = true
}

// Back measures m again through a new client on its client URL as it is
// now (a cutover moves it to https).
func (p *WriteProbe) Back(m *Member) {
	cl := p.dial(m)
	p.mu.Lock()
	tg := p.targets[m.Name]
	old := tg.client
	tg.client, tg.aside, tg.lastOK = cl, false, time.Now()
	p.mu.Unlock()
	old.Close()
}

// Gaps returns and resets the longest gaps measured since the last call:
// per member, through any member, and how many writes were accepted.
func (p *WriteProbe) Gaps() (perMember map[string]time.Duration, anyMember time.Duration, accepted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	perMember = map[string]time.Duration{}
	for name, tg := range p.targets {
		perMember[name] = tg.longest
		accepted += tg.accepted
		tg.longest, tg.accepted = 0, 0
	}
	anyMember, p.longestAny = p.longestAny, 0
	return perMember, anyMember, accepted
}

// Turn sets m aside while do runs, measures it again after, and returns
// the longest gap through the other members meanwhile.
func (p *WriteProbe) Turn(m *Member, do func()) time.Duration {
	p.Gaps()
	p.Aside(m)
	do()
	p.Back(m)
	perMember, _, _ := p.Gaps()
	longest := time.Duration(0)
	for name, g := range perMember {
		if name != m.Name {
			longest = max(longest, g)
		}
	}
	return longest
}

func (p *WriteProbe) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
	for _, tg := range p.targets {
		tg.client.Close()
	}
}
