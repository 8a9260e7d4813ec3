// Package agentapitest is test support: a stand-in for sensu-agent's
// events API (POST /events) that accepts only what the agent accepts,
// decoding strictly against core/v2's documented Event fields.
package agentapitest
