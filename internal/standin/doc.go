// Command standin stands in for sensu-backend in sensu-tlsd's tests where
// the real backend's behaviour matters to certificate rotation: it reads
// the same backend.yml keys as sensu-backend does (the last of a key set
// twice, SENSU_BACKEND_* variables from its unit's environment file over
// the file), loads its certificate files only at start (a
// restart is the only way to serve a new certificate, as with sensu-backend
// 6.x), serves the API and agent ports over TLS when cert-file and key-file
// are set, answers GET /health with a ClusterHealth body, accepts the agent
// websocket on / of the agent port with Sensu's headers and Basic auth, and
// exits 0 on SIGTERM. Flags make it fail on purpose so rollback can be
// tested. With --etcd it runs that etcd binary as its embedded etcd, with
// the flags backend.yml's etcd-* keys give (config/sensu's
// EmbeddedEtcdFlags), waits up to 60 s for it before opening its ports,
// answers /health from etcd's own, and ends when etcd dies.
//
//	standin -c backend.yml [--fail-if-cert-cn CN] [--fail-if-serial HEX]
//	        [--unhealthy-if-cert-cn CN] [--start-delay 2s] [--etcd /usr/bin/etcd]
//	standin agent [-c agent.yml] [--api-port 3031] [--hup-file FILE]
//
// The agent form stands in for sensu-agent: GET /healthz, and death with
// status 129 on SIGHUP. With -c it reads agent.yml once at start
// (backend-url as a list or a string, trusted-ca-file,
// insecure-skip-tls-verify, api-host, api-port, name), connects to the
// backends in turn with Sensu's headers and Basic auth, sends a keepalive
// the backend must echo every --keepalive-interval, reconnects a second
// after a failure, and answers /healthz 200 only while connected; it logs
// "agent connected", "agent disconnected" and "keepalive failed".
package main
