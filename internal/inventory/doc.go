// Package inventory tells an operator in one glance whether every
// certificate Sensu uses is sound: it gathers certificates from sensu-tlsd's
// config, from Sensu's backend.yml and agent.yml, or from files, runs the
// pki checks plus file-mode checks, and renders a table, JSON, or a Sensu
// check result with Prometheus metrics.
package inventory
