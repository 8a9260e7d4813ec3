package sensu

import (
	"fmt"
	"os"
)

// AgentIdentity is who an agent is to the backend: its entity name and
// namespace, and the credentials it connects with.
type AgentIdentity struct {
	Name, Namespace string
	User, Password  string
}

// Sensu's agent defaults for the identity keys: the name is the host's
// name, and every agent ships with the built-in agent user.
const (
	DefaultAgentNamespace = "default"
	DefaultAgentUser      = "agent"
	DefaultAgentPassword  = "P@ssw0rd!"
)

// AgentIdentity is the identity an agent node's files give, with Sensu's
// defaults for what they leave out.
func (n *Node) AgentIdentity() (AgentIdentity, error) {
	id := AgentIdentity{Name: n.Str("name"), Namespace: n.Str("namespace"), User: n.Str("user"), Password: n.Str("password")}
	if id.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return id, fmt.Errorf("agent name: no name is set and the host name cannot be read (%v): set name in agent.yml", err)
		}
		id.Name = host
	}
	if id.Namespace == "" {
		id.Namespace = DefaultAgentNamespace
	}
	if id.User == "" {
		id.User = DefaultAgentUser
	}
	if id.Password == "" {
		id.Password = DefaultAgentPassword
	}
	return id, nil
}
