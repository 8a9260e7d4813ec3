package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sensu-tlsd/sensu-tlsd/config"
	"github.com/sensu-tlsd/sensu-tlsd/rotate/install"
)

const defaultExecTimeout = 2 * time.Minute

// execIssuer runs an external command (cfssl, step, vault CLIs) that writes
// the set into files named by environment variables.
type execIssuer struct {
	argv    []string
	timeout time.Duration
}

func newExecIssuer(c config.ExecIssuer) (execIssuer, error) {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return execIssuer{}, errors.New("exec.command is empty: give the program and its arguments as a list, e.g. [/usr/local/bin/issue-cert, --profile, backend]")
	}
	return execIssuer{argv: c.Command, timeout: orDefault(c.Timeout, defaultExecTimeout)}, nil
}

func orDefault(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// Issue runs the command with SENSU_TLSD_CERT_FILE, SENSU_TLSD_KEY_FILE and
// SENSU_TLSD_CA_FILE naming files in stage, and reads what it wrote.
func (e execIssuer) Issue(ctx context.Context, p Plan, stage string) (install.Set, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	files := install.Paths{
		Cert: filepath.Join(stage, install.CertName),
		Key:  filepath.Join(stage, install.KeyName),
		CA:   filepath.Join(stage, install.CAName),
	}
	cmd := exec.CommandContext(ctx, e.argv[0], e.argv[1:]...)
	cmd.Dir = stage
	cmd.Env = append(os.Environ(),
		"SENSU_TLSD_NAME="+p.Name,
		"SENSU_TLSD_PROFILE="+string(p.Profile),
		"SENSU_TLSD_COMMON_NAME="+p.CommonName,
		"SENSU_TLSD_HOSTS="+strings.Join(p.Hosts, ","),
		"SENSU_TLSD_KEY_TYPE="+p.KeyType,
		"SENSU_TLSD_LIFETIME="+p.Lifetime.String(),
		"SENSU_TLSD_CERT_FILE="+files.Cert,
		"SENSU_TLSD_KEY_FILE="+files.Key,
		"SENSU_TLSD_CA_FILE="+files.CA,
	)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return install.Set{}, fmt.Errorf("exec issuer %q: %w%s", e.argv[0], err, tail(stderr.Bytes()))
	}
	set, err := followedFiles{paths: files}.ReadConfigured()
	if err != nil {
		return install.Set{}, fmt.Errorf("exec issuer %q exited 0 but did not write the set it was asked for: %w", e.argv[0], err)
	}
	return set, nil
}

// tail is the end of a command's output, for error messages.
func tail(out []byte) string {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return ""
	}
	if len(out) > 500 {
		out = out[len(out)-500:]
	}
	return ": " + string(out)
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, err
}
