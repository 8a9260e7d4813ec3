package enrol

import (
	"fmt"
	"path"
	"time"
)

// State is where an agent name stands.
type State string

const (
	// Pending: a request waits for `sensu-tlsd agents approve NAME`.
	Pending State = "pending"
	// Approved: an operator approved the pending key; the agent's next
	// request with that key is signed.
	Approved State = "approved"
	// Signed: the name is bound to Key and a certificate was issued.
	Signed State = "signed"
	// Denied: every request for the name is refused until it is approved.
	Denied State = "denied"
)

// Record is what the store keeps for one agent name.
type Record struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	State     State  `json:"state"`
	// Key is the fingerprint of the key the name is bound to: the key of
	// the last certificate signed for it ("" before the first).
	Key string `json:"key,omitempty"`
	// Requested is the fingerprint of the key waiting for approval
	// (pending, approved, or denied).
	Requested string `json:"requested,omitempty"`
	Reason    string `json:"reason,omitempty"` // why it waits or was refused
	// Serial and NotAfter describe the last certificate signed.
	Serial   string    `json:"serial,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Updated  time.Time `json:"updated"`
}

// Outcome is what the server does with a request.
type Outcome int

const (
	Sign   Outcome = iota
	Wait           // pending approval
	Refuse         // the name is denied
)

// Policy decides requests: autosign globs (path.Match) name the agents
// signed at their first enrolment without an operator.
type Policy struct {
	Autosign []string
}

// Autosigns reports whether name matches an autosign glob.
func (p Policy) Autosigns(name string) bool {
	for _, g := range p.Autosign {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// Enrol decides a request authenticated with Sensu credentials for key
// fingerprint fp; rec is the name's record (found false when there is
// none). It returns the record to store: on Sign, the caller fills in
// the certificate's serial and expiry.
func (p Policy) Enrol(rec Record, found bool, r Request, fp string, now time.Time) (Record, Outcome) {
	if !found {
		rec = Record{Name: r.Name, Namespace: r.Namespace}
	}
	rec.Updated = now
	switch {
	case rec.State == Denied:
		return rec, Refuse
	case rec.Key == "" && p.Autosigns(r.Name):
		return signed(rec, r, fp), Sign
	case rec.State == Approved && rec.Requested == fp && rec.Namespace == r.Namespace:
		return signed(rec, r, fp), Sign
	case rec.State == Signed && rec.Key == fp && rec.Namespace == r.Namespace:
		return signed(rec, r, fp), Sign // the same key again: a lost certificate
	}
	reason := fmt.Sprintf("%s matches no autosign pattern", r.Name)
	switch {
	case rec.Key != "" && rec.Namespace != r.Namespace:
		reason = fmt.Sprintf("%s is bound to namespace %s; this request is for %s", r.Name, rec.Namespace, r.Namespace)
	case rec.Key != "":
		reason = fmt.Sprintf("%s is bound to key %s; this request has another key (%s)", r.Name, Short(rec.Key), Short(fp))
	case rec.State == Approved:
		reason = fmt.Sprintf("the approval was for key %s; this request has another key (%s)", Short(rec.Requested), Short(fp))
	}
	if rec.State == Pending && rec.Requested == fp {
		reason = rec.Reason // the same request again: it keeps its place and reason
	}
	rec.State, rec.Requested, rec.Reason = Pending, fp, reason
	if rec.Key == "" {
		rec.Namespace = r.Namespace
	}
	return rec, Wait
}

// Renew decides a request authenticated with a current certificate for
// the name: the certificate proves the name, so the binding moves to the
// new key unless the name is denied.
func (p Policy) Renew(rec Record, found bool, r Request, fp string, now time.Time) (Record, Outcome) {
	if !found {
		rec = Record{Name: r.Name}
	}
	rec.Updated = now
	if rec.State == Denied {
		return rec, Refuse
	}
	return signed(rec, r, fp), Sign
}

func signed(rec Record, r Request, fp string) Record {
	rec.State, rec.Key, rec.Namespace, rec.Requested, rec.Reason = Signed, fp, r.Namespace, "", ""
	return rec
}

// Approve lets the name's waiting key (or, for a denied name with none,
// its bound key) be signed at the agent's next request.
func Approve(rec Record, now time.Time) (Record, error) {
	switch {
	case rec.State == Signed:
		return rec, fmt.Errorf("%s is signed already (key %s): nothing waits for approval", rec.Name, Short(rec.Key))
	case rec.State == Approved:
		return rec, fmt.Errorf("%s is approved already; its agent's next request with key %s is signed", rec.Name, Short(rec.Requested))
	case rec.Requested == "":
		rec.State = Signed // a denied name that never asked for another key
	default:
		rec.State = Approved
	}
	rec.Reason, rec.Updated = "", now
	return rec, nil
}

// Deny refuses every request for the name until it is approved again.
func Deny(rec Record, now time.Time) (Record, error) {
	if rec.State == Denied {
		return rec, fmt.Errorf("%s is denied already", rec.Name)
	}
	rec.State, rec.Reason, rec.Updated = Denied, "denied by an operator", now
	return rec, nil
}

// Short is a fingerprint's first 16 hex digits, enough to tell keys apart
// in a message.
func Short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}
