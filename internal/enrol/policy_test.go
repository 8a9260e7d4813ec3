package enrol

import (
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func TestPolicyAutosignBindsTheFirstKey(t *testing.T) {
	p := Policy{Autosign: []string{"web-*"}}
	rec, out := p.Enrol(Record{}, false, Request{Name: "web-1", Namespace: "default"}, "k1", now)
	if out != Sign || rec.State != Signed || rec.Key != "k1" {
		t.Fatalf("first enrolment of an autosigned name: %v %+v", out, rec)
	}
	// The same key again (a lost certificate) is signed again.
	if _, out := p.Enrol(rec, true, Request{Name: "web-1", Namespace: "default"}, "k1", now); out != Sign {
		t.Fatalf("the bound key again: %v", out)
	}
	// Another key for the bound name waits, whatever autosign says.
	next, out := p.Enrol(rec, true, Request{Name: "web-1", Namespace: "default"}, "k2", now)
	if out != Wait || next.State != Pending || next.Requested != "k2" || next.Key != "k1" {
		t.Fatalf("a second key for a bound name: %v %+v", out, next)
	}
	if !strings.Contains(next.Reason, "bound to key k1") {
		t.Errorf("reason %q does not name the bound key", next.Reason)
	}
	// Once approved, that key is signed and the binding moves to it.
	approved, err := Approve(next, now)
	if err != nil || approved.State != Approved {
		t.Fatalf("approve: %v %+v", err, approved)
	}
	signed, out := p.Enrol(approved, true, Request{Name: "web-1", Namespace: "default"}, "k2", now)
	if out != Sign || signed.Key != "k2" || signed.Requested != "" {
		t.Fatalf("the approved key: %v %+v", out, signed)
	}
}

func TestPolicyPendingUntilApproved(t *testing.T) {
	p := Policy{Autosign: []string{"web-*"}}
	r := Request{Name: "db-1", Namespace: "prod"}
	rec, out := p.Enrol(Record{}, false, r, "k1", now)
	if out != Wait || rec.State != Pending || rec.Requested != "k1" || rec.Key != "" {
		t.Fatalf("a name no pattern matches: %v %+v", out, rec)
	}
	if !strings.Contains(rec.Reason, "matches no autosign pattern") {
		t.Errorf("reason %q", rec.Reason)
	}
	rec, _ = Approve(rec, now)
	// An approval is for the key that asked: another key waits again.
	other, out := p.Enrol(rec, true, r, "k9", now)
	if out != Wait || other.State != Pending || !strings.Contains(other.Reason, "approval was for key k1") {
		t.Fatalf("another key after approval: %v %+v", out, other)
	}
	signed, out := p.Enrol(rec, true, r, "k1", now)
	if out != Sign || signed.Key != "k1" || signed.Namespace != "prod" {
		t.Fatalf("the approved key: %v %+v", out, signed)
	}
	if _, err := Approve(signed, now); err == nil {
		t.Error("approving a signed name with nothing waiting succeeded")
	}
	// A bound agent moving to another namespace waits too.
	if moved, out := p.Enrol(signed, true, Request{Name: "db-1", Namespace: "dev"}, "k1", now); out != Wait || !strings.Contains(moved.Reason, "namespace prod") {
		t.Fatalf("another namespace: %v %+v", out, moved)
	}
}

func TestPolicyDenied(t *testing.T) {
	p := Policy{Autosign: []string{"*"}}
	r := Request{Name: "a", Namespace: "default"}
	rec, _ := p.Enrol(Record{}, false, r, "k1", now)
	denied, err := Deny(rec, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, out := p.Enrol(denied, true, r, "k1", now); out != Refuse {
		t.Errorf("enrol of a denied name: %v", out)
	}
	if _, out := p.Renew(denied, true, r, "k2", now); out != Refuse {
		t.Errorf("renew of a denied name: %v", out)
	}
	// Approving a denied name that asked for no other key restores it.
	back, err := Approve(denied, now)
	if err != nil || back.State != Signed || back.Key != "k1" {
		t.Fatalf("approve a denied signed name: %v %+v", err, back)
	}
}

func TestPolicyRenewMovesTheBinding(t *testing.T) {
	rec, out := Policy{}.Renew(Record{Name: "a", Namespace: "default", State: Signed, Key: "k1"}, true, Request{Name: "a", Namespace: "default"}, "k2", now)
	if out != Sign || rec.Key != "k2" {
		t.Fatalf("renew: %v %+v", out, rec)
	}
}
