// Package regenerate is the bus consumer that keeps Sensu's own files
// (backend.yml, agent.yml and their environment files) pointing at the
// managed certificate files when a rotation moves them. It decides which
// keys follow which certificate from config/sensu's table of certificate
// keys and edits through config/sensu, the library, so comments and
// foreign keys survive and a rewrite that adds lint errors is refused. It
// sits in front of the service actions and hands each change on with the
// files it rewrote added to Change.Files.
package regenerate
