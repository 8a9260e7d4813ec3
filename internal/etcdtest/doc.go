// Package etcdtest runs a real etcd cluster for tests: N members of
// Debian's etcd-server binary on loopback, each described by a generated
// backend.yml (the three-member layout of Sensu's clustering guide) and
// started with the flags sensu-backend gives its embedded etcd from that
// file's etcd-* keys, so a test that edits the file (a migrate phase, a
// rollback) and restarts the member runs what a backend would run. The
// certificates come from the project's CA (rotate/ca) and cover localhost
// and 127.0.0.1, the address peers connect from on loopback. Like
// net/http/httptest it is imported only by tests.
package etcdtest
