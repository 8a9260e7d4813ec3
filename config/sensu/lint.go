package sensu

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/sensu-tlsd/sensu-tlsd/internal/pki"
)

// Severity ranks a finding. Errors are settings Sensu will run with but get
// wrong (TLS silently off, a handshake that will fail); warnings are
// settings that work but are risky or surprising; info says how lint read
// a setting that looks wrong but is not.
type Severity int

const (
	Info Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "info"
}

// Finding is one lint result: where, what, and how to fix it.
type Finding struct {
	File     string
	Line     int // 1-based; 0 when the setting is absent (a default applies)
	Severity Severity
	Key      string
	What     string
	Fix      string
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc += ":" + strconv.Itoa(f.Line)
	}
	if f.Fix == "" {
		return fmt.Sprintf("%s: %s: %s: %s", loc, f.Severity, f.Key, f.What)
	}
	return fmt.Sprintf("%s: %s: %s: %s (fix: %s)", loc, f.Severity, f.Key, f.What, f.Fix)
}

// LintOptions tune the checks that depend on the machine.
type LintOptions struct {
	// User is the account the Sensu process runs as; files it must read
	// are checked against its uid and groups. "" means "sensu". When the
	// account does not exist the check is not made and a warning says so.
	User string
	// Role forces the role instead of detecting it.
	Role Role
	// Uplink is the host:port of this node's sensu-tlsd agent uplink (agent
	// mTLS on the open-source build), "" when the node has none. A ws://
	// backend-url entry at it stays on the node: sensu-tlsd carries the
	// connection on over TLS with the agent certificate, so it is reported
	// as info, not as plaintext.
	Uplink string
}

// lintFile reads and lints one Sensu config: a YAML file, or an
// environment file (KEY=value lines, as /etc/default/sensu-agent). It also
// returns the YAML document it parsed (nil for an environment file or a
// file that does not parse), for LintPair.
func lintFile(path string, opt LintOptions) ([]Finding, Role, *Document, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, "", nil, err
	}
	var se *SyntaxError
	if lines, ok, syntax := envFileOf(path, src); ok {
		role := opt.Role
		if role == "" {
			if role, err = envRole(path, lines); err != nil {
				return nil, "", nil, err
			}
		}
		if errors.As(syntax, &se) {
			return syntaxFinding(se), role, nil, nil
		}
		return LintEnv(&EnvFile{Name: path, Role: role, lines: lines}, opt), role, nil, nil
	}
	d, err := Parse(path, src)
	switch {
	case errors.As(err, &se):
		return syntaxFinding(se), opt.Role, nil, nil
	case err != nil:
		return nil, "", nil, err
	}
	role := opt.Role
	if role == "" {
		if role, err = DetectRole(d); err != nil {
			return nil, "", nil, err
		}
	}
	return Lint(d, role, opt), role, d, nil
}

// syntaxFinding is a file that does not parse, as a finding.
func syntaxFinding(se *SyntaxError) []Finding {
	return []Finding{{File: se.File, Line: se.Line, Severity: Error, Key: "(file)", What: se.What, Fix: se.Fix}}
}

// source is what the linter reads settings from: a YAML document or an
// environment file.
type source interface {
	Get(key string) (Value, bool)
	Line(key string) int
	// label is the name the file gives key (cert-file, or
	// SENSU_BACKEND_CERT_FILE in an environment file).
	label(key string) string
	// plain reports whether Sensu resolves key's value by YAML 1.1 rules
	// (an unquoted YAML scalar) rather than as a string.
	plain(key string) bool
}

// linter carries one run's state.
type linter struct {
	name     string
	src      source
	env      bool
	role     Role
	reader   *account
	user     string // the account asked for, named when it does not exist
	uplink   string // LintOptions.Uplink
	findings []Finding
}

func newLinter(name string, src source, env bool, role Role, opt LintOptions) *linter {
	user := opt.User
	if user == "" {
		user = "sensu"
	}
	return &linter{name: name, src: src, env: env, role: role, reader: lookupAccount(user), user: user, uplink: opt.Uplink}
}

// Lint checks a parsed config for what Sensu would silently get wrong.
func Lint(d *Document, role Role, opt LintOptions) []Finding {
	l := newLinter(d.Name, d, false, role, opt)
	l.unknownKeys(d.Keys())
	l.duplicates(d)
	l.booleans()
	l.insecureSkipVerify()
	l.urlLists()
	for _, k := range CertKeysOf(role) {
		l.pair(k.Cert, k.Key)
	}
	if role == Backend {
		l.backendURLs()
		l.backendCerts()
	} else {
		l.uplinkURLs()
		l.agentURLs()
	}
	l.files()
	return l.sorted()
}

// LintEnv checks an environment file. Its settings override the YAML
// file's, so only what one variable can get wrong on its own is checked
// here (names, booleans, list separators, ws/wss mixes, files); checks
// across keys (a cert without its key) need the YAML file too.
func LintEnv(e *EnvFile, opt LintOptions) []Finding {
	l := newLinter(e.Name, e, true, e.Role, opt)
	l.unknownEnvVars(e)
	l.booleans()
	l.insecureSkipVerify()
	l.urlLists()
	if e.Role == Agent {
		l.uplinkURLs()
		l.mixedSchemes()
	}
	l.files()
	return l.sorted()
}

func (l *linter) sorted() []Finding {
	sort.SliceStable(l.findings, func(i, j int) bool { return l.findings[i].Line < l.findings[j].Line })
	return l.findings
}

func (l *linter) add(line int, sev Severity, key, what, fix string) {
	l.findings = append(l.findings, Finding{File: l.name, Line: line, Severity: sev, Key: key, What: what, Fix: fix})
}

// lineOr is key's line, or the line of a related key when key is absent.
func (l *linter) lineOr(key string, others ...string) int {
	if n := l.src.Line(key); n > 0 {
		return n
	}
	for _, o := range others {
		if n := l.src.Line(o); n > 0 {
			return n
		}
	}
	return 0
}

func (l *linter) str(key string) string {
	v, _ := l.src.Get(key)
	return v.Scalar
}

func (l *linter) unknownKeys(keys []string) {
	other := Agent
	if l.role == Agent {
		other = Backend
	}
	for _, k := range keys {
		if KnownKey(l.role, k) {
			continue
		}
		line := l.src.Line(k)
		if k == "" {
			l.add(line, Warning, `""`, "an empty key; Sensu ignores it", "remove the line or name the key")
			continue
		}
		if KnownKey(other, k) {
			l.add(line, Warning, k, fmt.Sprintf("%s is an %s setting; sensu-%s ignores it here", k, other, l.role),
				fmt.Sprintf("move it to %s.yml or remove it", other))
			continue
		}
		s := Suggest(l.role, k)
		if s == "" {
			l.add(line, Warning, k, "unknown key; Sensu ignores it without a word", "remove it or correct its spelling")
			continue
		}
		sev := Warning
		if Owned(l.role, s) {
			// A misspelt TLS key silently leaves TLS off.
			sev = Error
		}
		l.add(line, sev, k, "unknown key; Sensu ignores it without a word", fmt.Sprintf("rename it to %s", s))
	}
}

// unknownEnvVars reports variables with the role's prefix that name no
// setting (SENSU_BACKEND_CERTFILE).
func (l *linter) unknownEnvVars(e *EnvFile) {
	prefix := EnvName(l.role, "")
	for _, v := range e.vars() {
		rest, ok := strings.CutPrefix(v.name, prefix)
		if !ok || rest == "" {
			continue
		}
		key := envKey(rest)
		if KnownKey(l.role, key) {
			continue
		}
		s := Suggest(l.role, key)
		if s == "" {
			l.add(v.line, Warning, v.name, fmt.Sprintf("sensu-%s reads no setting from %s", l.role, v.name), "remove it or correct its spelling")
			continue
		}
		sev := Warning
		if Owned(l.role, s) {
			sev = Error
		}
		l.add(v.line, sev, v.name, fmt.Sprintf("sensu-%s reads no setting from %s", l.role, v.name), "rename it to "+EnvName(l.role, s))
	}
}

// duplicates reports keys set twice: Sensu (yaml.v2) uses the last one,
// sensu-tlsd's editor refuses the file.
func (l *linter) duplicates(d *Document) {
	for _, dup := range d.duplicateKeys() {
		last := dup.lines[len(dup.lines)-1]
		for _, line := range dup.lines[:len(dup.lines)-1] {
			l.add(line, Error, dup.key, fmt.Sprintf("duplicate key: %s is set again on line %d, and Sensu uses line %d, ignoring this one", dup.key, last, last),
				fmt.Sprintf("delete this line or line %d, so the file says once what Sensu does", last))
		}
	}
}

// booleans reports settings Sensu reads as false although they are not
// plainly false: a value that is no boolean at all, or a YAML 1.1 word
// (yes, on) in quotes or an environment file, where it is only a string.
func (l *linter) booleans() {
	for _, key := range boolKeys {
		v, set := l.src.Get(key)
		if !set || v.IsList || v.Scalar == "" || !KnownKey(l.role, key) {
			continue
		}
		if _, ok := sensuBool(v.Scalar, l.src.plain(key)); ok {
			continue
		}
		sev := Warning
		if key == "etcd-client-cert-auth" || key == "etcd-peer-client-cert-auth" {
			sev = Error // client certificates silently not required
		}
		what := fmt.Sprintf("%q is not a boolean to Sensu, which reads it as false", v.Scalar)
		if b, ok := sensuBool(v.Scalar, true); ok && b {
			what = fmt.Sprintf("%q is a string here (quoted, or in an environment file), not the YAML boolean yes; Sensu reads it as false", v.Scalar)
		}
		l.add(l.src.Line(key), sev, l.src.label(key), what, "write true or false")
	}
}

func (l *linter) insecureSkipVerify() {
	v, ok := l.src.Get("insecure-skip-tls-verify")
	if b, isBool := sensuBool(v.Scalar, l.src.plain("insecure-skip-tls-verify")); ok && isBool && b {
		l.add(l.src.Line("insecure-skip-tls-verify"), Error, l.src.label("insecure-skip-tls-verify"),
			"certificate verification is off: anyone on the path can impersonate the peer",
			"set insecure-skip-tls-verify: false and point trusted-ca-file at the CA bundle")
	}
}

// urlLists reports list entries that join several URLs with commas: Sensu
// reads one URL per YAML list entry and splits environment lists on
// spaces, so such an entry is one URL that cannot be dialled.
func (l *linter) urlLists() {
	for _, key := range urlListKeys {
		v, ok := l.src.Get(key)
		if !ok || !KnownKey(l.role, key) {
			continue
		}
		split, joined := splitURLList(v)
		if !joined {
			continue
		}
		items, fixed := SensuItems(v), SensuItems(split)
		fix := fmt.Sprintf("write one URL per list entry: %s: [%s]", key, strings.Join(fixed, ", "))
		if l.env {
			fix = fmt.Sprintf("separate the URLs with spaces: %s=\"%s\"", l.src.label(key), strings.Join(fixed, " "))
		}
		l.add(l.src.Line(key), Error, l.src.label(key),
			fmt.Sprintf("%q joins URLs with commas; Sensu reads it as a single URL, which nothing answers", strings.Join(items, " ")), fix)
	}
}

// pair reports one half of a cert/key pair.
func (l *linter) pair(cert, key string) {
	c, k := l.str(cert) != "", l.str(key) != ""
	switch {
	case c && !k:
		l.add(l.src.Line(cert), Error, cert, fmt.Sprintf("%s is set but %s is not (Sensu fails with \"tls configuration error\")", cert, key),
			fmt.Sprintf("set %s to the certificate's private key", key))
	case k && !c:
		l.add(l.src.Line(key), Error, key, fmt.Sprintf("%s is set but %s is not (Sensu fails with \"tls configuration error\")", key, cert),
			fmt.Sprintf("set %s to the certificate", cert))
	}
}

// urlsOf returns the URLs a key holds, or its default when absent.
func (l *linter) urlsOf(key string) []string {
	if v, ok := l.src.Get(key); ok {
		return URLs(v)
	}
	if def, ok := Default(l.role, key); ok {
		return URLs(def)
	}
	return nil
}

func hasScheme(urls []string, scheme string) bool {
	for _, u := range urls {
		if strings.HasPrefix(strings.ToLower(u), scheme+"://") {
			return true
		}
	}
	return false
}

func (l *linter) backendURLs() {
	cert := l.str("cert-file") != ""
	apiURLs := l.urlsOf("api-url")
	switch {
	case hasScheme(apiURLs, "https") && !cert:
		l.add(l.lineOr("api-url"), Error, "api-url", "api-url is https but no cert-file is set: the API serves plaintext",
			"set cert-file and key-file, or make api-url http")
	case cert && hasScheme(apiURLs, "http"):
		l.add(l.lineOr("api-url", "cert-file"), Error, "api-url", "cert-file is set, so the API serves https, but api-url is still http",
			"make api-url https://")
	}
	etcdCert := l.str("etcd-cert-file") != ""
	for _, key := range []string{"etcd-listen-client-urls", "etcd-advertise-client-urls"} {
		urls := l.urlsOf(key)
		switch {
		case hasScheme(urls, "https") && !etcdCert:
			l.add(l.lineOr(key), Error, key, key+" is https but etcd-cert-file is not set: etcd will not start",
				"set etcd-cert-file, etcd-key-file and etcd-trusted-ca-file")
		case etcdCert && hasScheme(urls, "http"):
			l.add(l.lineOr(key, "etcd-cert-file"), Warning, key, "etcd-cert-file is set but "+key+" is still http: etcd clients talk plaintext",
				"make every "+key+" entry https://")
		}
	}
	peerCert := l.str("etcd-peer-cert-file") != ""
	for _, key := range []string{"etcd-listen-peer-urls", "etcd-initial-advertise-peer-urls", "etcd-initial-cluster"} {
		v, ok := l.src.Get(key)
		if !ok {
			continue
		}
		urls := URLs(v)
		switch {
		case hasScheme(urls, "https") && !peerCert:
			l.add(l.src.Line(key), Error, key, key+" is https but etcd-peer-cert-file is not set: etcd peers cannot handshake",
				"set etcd-peer-cert-file, etcd-peer-key-file and etcd-peer-trusted-ca-file")
		case peerCert && hasScheme(urls, "http"):
			// During a rolling cutover (sensu-tlsd migrate phase 1) a
			// member holds the peer certificate before its own peer URLs
			// move: etcd dials members already on https with it.
			l.add(l.src.Line(key), Warning, key, "etcd-peer-cert-file is set but "+key+" is still http: this member's peer traffic is plaintext "+
				"(etcd uses the certificate only to dial members whose peer URLs are https)",
				"make every "+key+" entry https:// (sensu-tlsd migrate apply --phase 3 does it with the cluster's etcd)")
		}
	}
}

func (l *linter) backendCerts() {
	for _, u := range CertKeysOf(Backend) {
		path := l.str(u.Cert)
		if path == "" {
			continue
		}
		chain, err := pki.ReadCertificates(path)
		if err != nil || len(chain) == 0 {
			continue // files() reports missing or unreadable files
		}
		leaf := chain[0]
		users := "that clients use"
		if u.SourceChecked {
			users = "that peers dial or that this member connects from"
		}
		for _, h := range certHosts(l.role, l.src.Get, u) {
			if !pki.Covers(leaf, h) {
				l.add(l.src.Line(u.Cert), Error, u.Cert,
					fmt.Sprintf("%s does not cover host %q %s (SANs: %s)", path, h, users, strings.Join(pki.SANs(leaf), ", ")),
					fmt.Sprintf("reissue the certificate with %q among its hosts", h))
			}
		}
		if u.ClientToo() && !hasClientAuth(leaf) {
			l.add(l.src.Line(u.Cert), Error, u.Cert,
				fmt.Sprintf("%s lacks the clientAuth extended key usage; the embedded etcd also presents it as a client, so cluster and backend connections fail", path),
				"reissue it with both serverAuth and clientAuth (cfssl profile \"peer\")")
		}
	}
}

func isWildcard(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsUnspecified()
}

func hasClientAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 {
		return true // no restriction
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func (l *linter) agentBackendURLs() ([]string, int) {
	v, ok := l.src.Get("backend-url")
	if !ok {
		def, _ := Default(Agent, "backend-url")
		return URLs(def), 0
	}
	return URLs(v), l.src.Line("backend-url")
}

// isUplink reports whether u is a ws:// URL at the node's sensu-tlsd
// agent uplink.
func (l *linter) isUplink(u string) bool {
	parsed, err := url.Parse(u)
	return l.uplink != "" && err == nil && strings.EqualFold(parsed.Scheme, "ws") && parsed.Host == l.uplink
}

// networkURLs are the backend-url entries that leave the node: every one
// but the sensu-tlsd uplink's.
func (l *linter) networkURLs() ([]string, int) {
	urls, line := l.agentBackendURLs()
	return slices.DeleteFunc(urls, l.isUplink), line
}

// uplinkURLs reports a backend-url entry at the sensu-tlsd uplink as what
// it is, once per file.
func (l *linter) uplinkURLs() {
	urls, line := l.agentBackendURLs()
	i := slices.IndexFunc(urls, l.isUplink)
	if i < 0 {
		return
	}
	what := urls[i] + " is this node's sensu-tlsd agent uplink (agent mTLS on the open-source build): the connection stays on the node in ws://, and sensu-tlsd carries it to the backends over TLS, presenting the agent's certificate"
	if l.str("cert-file") != "" || l.str("trusted-ca-file") != "" {
		what += "; cert-file, key-file and trusted-ca-file are not used on this hop"
	}
	l.add(line, Info, l.src.label("backend-url"), what, "")
}

// mixedSchemes reports a backend-url list with both ws:// and wss://.
func (l *linter) mixedSchemes() {
	urls, line := l.networkURLs()
	if hasScheme(urls, "ws") && hasScheme(urls, "wss") {
		l.add(line, Error, l.src.label("backend-url"), "mixed ws:// and wss:// entries: the agent sends its credentials in plaintext whenever it fails over to a ws:// member",
			"make every backend-url entry wss://")
	}
}

func (l *linter) agentURLs() {
	l.mixedSchemes()
	urls, line := l.networkURLs()
	ws, wss := hasScheme(urls, "ws"), hasScheme(urls, "wss")
	if wss && !ws && l.str("trusted-ca-file") == "" {
		l.add(line, Warning, "backend-url", "wss:// without trusted-ca-file: the backend's certificate must chain to the system trust store",
			"set trusted-ca-file to the CA bundle that signed the backends' certificates")
	}
	if (l.str("cert-file") != "" || l.str("trusted-ca-file") != "") && ws && !wss {
		l.add(line, Error, "backend-url", "TLS files are set but every backend-url is ws://: the agent connects in plaintext",
			"make every backend-url entry wss://")
	}
}

func (l *linter) files() {
	var unchecked []string
	for _, key := range fileKeys(l.role) {
		path := l.str(key)
		if path == "" {
			continue
		}
		line, label := l.src.Line(key), l.src.label(key)
		st, err := os.Stat(path)
		if err != nil {
			l.add(line, Error, label, fmt.Sprintf("%s does not exist or cannot be read: %v", path, errReason(err)),
				"create the file or point "+label+" at the right path")
			continue
		}
		if st.IsDir() {
			l.add(line, Error, label, path+" is a directory", "point "+label+" at a PEM file")
			continue
		}
		switch {
		case l.reader == nil:
			unchecked = append(unchecked, label)
		case !l.reader.canRead(path):
			l.add(line, Error, label, fmt.Sprintf("%s is not readable by the %s user (mode %v)", path, l.reader.name, st.Mode().Perm()),
				readableFix(path, label, l.reader.group))
		}
	}
	if len(unchecked) > 0 {
		l.add(l.src.Line(unchecked[0]), Warning, "(readability)",
			fmt.Sprintf("not checked whether sensu-%s can read %s: there is no account %q on this machine", l.role, strings.Join(unchecked, ", "), l.user),
			"pass --user with the account sensu-"+string(l.role)+" runs as")
	}
}

// readableFix is how to let a Sensu process in group read path. A link is
// how sensu-tlsd installs a certificate set, and it replaces the link's
// target at every renewal, so a chgrp or chmod on it lasts only until
// then: the fix that lasts is in sensu-tlsd's config.
func readableFix(path, label, group string) string {
	chgrp := fmt.Sprintf("chgrp %s %s && chmod g+r %s (and let the user traverse its directories)", group, path, path)
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return chgrp
	}
	mode := "cert-mode"
	if strings.Contains(label, "key-file") {
		mode = "key-mode"
	}
	return fmt.Sprintf(`%s is a link, as sensu-tlsd installs certificates, so a chgrp or chmod lasts only until the next renewal replaces it; `+
		`when sensu-tlsd manages it, set defaults.group: %s and defaults.%s: "0640" in its config (or group and %s on that certificate), `+
		`then reload it and run sensu-tlsd renew NAME --force; otherwise %s on the file it points to`, path, group, mode, mode, chgrp)
}

func errReason(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// account is the user a Sensu process runs as.
type account struct {
	name  string
	group string // primary group name, for a chgrp fix
	uid   uint32
	gids  map[uint32]bool
}

// lookupAccount finds a user by name; nil when there is no such account.
func lookupAccount(name string) *account {
	u, err := user.Lookup(name)
	if err != nil {
		return nil
	}
	a := &account{name: name, group: u.Gid, gids: map[uint32]bool{}}
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		a.group = g.Name
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	a.uid = uint32(uid)
	gids, _ := u.GroupIds()
	gids = append(gids, u.Gid)
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.gids[uint32(n)] = true
		}
	}
	return a
}

// AccountExists reports whether the named user exists on this machine.
func AccountExists(name string) bool { return lookupAccount(name) != nil }

// canRead checks the permission bits the kernel would: search on every
// directory on the way, read on the file.
func (a *account) canRead(path string) bool {
	if a.uid == 0 {
		return true
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if !a.allowed(dir, 1) {
			return false
		}
		if dir == "/" {
			break
		}
	}
	return a.allowed(abs, 4)
}

// allowed tests one permission bit (4 read, 1 search) for the account.
func (a *account) allowed(path string, bit os.FileMode) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	mode := st.Mode().Perm()
	switch {
	case sys.Uid == a.uid:
		return mode&(bit<<6) != 0
	case a.gids[sys.Gid]:
		return mode&(bit<<3) != 0
	}
	return mode&bit != 0
}

// Worst returns the highest severity among findings, 0 when none.
func Worst(fs []Finding) Severity {
	var w Severity
	for _, f := range fs {
		w = max(w, f.Severity)
	}
	return w
}

// LintPair checks an agent config against the backend config of the same
// machine: the agent's backend-url entries that reach this backend's agent
// port must be covered by the backend's certificate.
func LintPair(backend, agent *Document) []Finding {
	certPath := ""
	if v, ok := backend.Get("cert-file"); ok {
		certPath = v.Scalar
	}
	if certPath == "" {
		return nil
	}
	chain, err := pki.ReadCertificates(certPath)
	if err != nil || len(chain) == 0 {
		return nil
	}
	agentPort := defaultStr(Backend, "agent-port")
	port := agentPort
	if v, ok := backend.Get("agent-port"); ok && v.Scalar != "" {
		port = v.Scalar
	}
	urls, ok := agent.Get("backend-url")
	if !ok {
		urls, _ = Default(Agent, "backend-url")
	}
	var fs []Finding
	for _, u := range URLs(urls) {
		parsed, err := url.Parse(u)
		if err != nil || !strings.EqualFold(parsed.Scheme, "wss") {
			continue
		}
		host, p := parsed.Hostname(), parsed.Port()
		if p == "" {
			p = agentPort // sensu-agent adds the default agent port
		}
		if p != port || !isLocalHost(host) || pki.Covers(chain[0], host) {
			continue
		}
		fs = append(fs, Finding{File: agent.Name, Line: agent.Line("backend-url"), Severity: Error, Key: "backend-url",
			What: fmt.Sprintf("%s reaches this machine's backend, whose certificate %s does not cover %q (SANs: %s)", u, certPath, host, strings.Join(pki.SANs(chain[0]), ", ")),
			Fix:  fmt.Sprintf("reissue the backend certificate with %q among its hosts, or use a host it covers", host)})
	}
	return fs
}

// isLocalHost reports whether host names this machine.
func isLocalHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if name, err := os.Hostname(); err == nil && strings.EqualFold(host, name) {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// LintFiles lints each file and, when the files hold one backend and one
// agent YAML config, the pair (LintPair). An unreadable file is an error,
// not a finding.
func LintFiles(paths []string, opt LintOptions) ([]Finding, error) {
	var all []Finding
	docs := map[Role][]*Document{}
	for _, path := range paths {
		fs, role, d, err := lintFile(path, opt)
		if err != nil {
			return nil, err
		}
		all = append(all, fs...)
		if d != nil {
			docs[role] = append(docs[role], d)
		}
	}
	if len(docs[Backend]) == 1 && len(docs[Agent]) == 1 {
		all = append(all, LintPair(docs[Backend][0], docs[Agent][0])...)
	}
	return all, nil
}

// CheckNoNewErrors lints a file before and after an edit: an edit may keep
// an operator's existing problem but must not add one. The error lists what
// the edit would add.
func CheckNoNewErrors(name string, before, after []byte, r Role, opt LintOptions) error {
	a, err := Parse(name, after)
	if err != nil {
		return fmt.Errorf("%s: refusing the rewrite: %w", name, err)
	}
	old := map[string]bool{}
	if b, err := Parse(name, before); err == nil {
		for _, f := range Lint(b, r, opt) {
			if f.Severity == Error {
				old[f.Key+"\x00"+f.What] = true
			}
		}
	}
	var errs []error
	for _, f := range Lint(a, r, opt) {
		if f.Severity == Error && !old[f.Key+"\x00"+f.What] {
			errs = append(errs, fmt.Errorf("refusing to rewrite %s: it would gain %s", name, f))
		}
	}
	return errors.Join(errs...)
}
