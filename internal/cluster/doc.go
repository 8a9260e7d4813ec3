// Package cluster coordinates a clustered Sensu backend through the
// cluster's own etcd, with the official client (go.etcd.io/etcd/client/v3;
// this is the only package that imports it):
//
//   - membership: Members lists each member's ID, name, peer and client URLs
//     as etcd stores them, which one leads and which answer, and whether the
//     cluster has quorum; MovePeerURLs updates one member's stored peer URLs
//     between http and https (etcd ignores etcd-initial-cluster once it has
//     data, so a running cluster changes scheme only this way), refusing
//     when the cluster lacks quorum or would lose it while that member
//     restarts, and checking quorum again afterwards;
//   - Lock, a lease-based lock (concurrency.Mutex on a session whose TTL
//     frees the lock when its holder dies) so only one member restarts at a
//     time, for a cutover step and for a certificate renewal alike;
//   - a record of each member's migration phase and of the agents still
//     seen in plaintext, under KeyPrefix, so any member shows the fleet;
//   - SwitchMember, the member-by-member step a cutover and its rollback
//     both run: lock, hand leadership away, stop the member, move its peer
//     URLs, start it, wait for it and quorum, record the phase; and
//     RestartMember, the same turn for a restart that leaves the peer URLs
//     as they are.
//
// The connection comes from a member's backend.yml (ReadBackend, or
// BackendOf a node with its environment files): its etcd client URLs and
// the etcd-cert-file / etcd-key-file / etcd-trusted-ca-file client
// certificate sensu-backend itself uses. Open is the project's one etcd
// client setup; Get, PutIfRevision and List keep internal/enrol's records
// with a compare-and-swap on each key's mod revision.
package cluster
