// Package enrol is the backend side of agent enrolment, modelled on
// Puppet's CA: an agent node's sensu-tlsd makes its key locally and sends
// a certificate request for its agent name to a backend's enrol-server,
// authenticated with the Sensu credentials of its agent.yml (checked
// against the Sensu API's GET /auth). The server signs with the local CA
// by policy: names matching an autosign glob at once, others once an
// operator runs `sensu-tlsd agents approve NAME`. The first signed
// request binds the name to its key; another key for a bound name waits
// for approval. Renewals are authenticated with the current certificate
// instead of credentials.
//
// Bindings and approvals are records in a Store: a file in the state
// directory for one backend, or the cluster's etcd, so any member serves
// enrolment and gives the same answer. Every change is a compare-and-swap,
// so two members deciding at once cannot both win. The etcd store reaches
// the cluster through internal/cluster, as every etcd client here does.
//
// Service is the daemon's enrol-server: it follows SIGHUP through
// internal/reload (Prepare builds, Commit swaps and rebinds a changed
// address), and a Limiter per client address bounds /v1/enrol, each of
// which costs the Sensu API a password check.
package enrol
