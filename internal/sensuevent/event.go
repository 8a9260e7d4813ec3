package sensuevent

// Sensu check statuses (the Nagios convention Sensu uses).
const (
	StatusOK       = 0
	StatusWarning  = 1
	StatusCritical = 2
)

// Event is the part of a core/v2 Event the agent events API takes from a
// client: the agent fills in the entity (its own) and the namespace.
type Event struct {
	Timestamp int64    `json:"timestamp"`
	Check     *Check   `json:"check"`
	Metrics   *Metrics `json:"metrics,omitempty"`
}

// Check is a check result: the name identifies the event for its entity,
// so the OK that follows a failure must carry the same name.
type Check struct {
	Metadata ObjectMeta `json:"metadata"`
	Status   uint32     `json:"status"`
	Output   string     `json:"output"`
	// Executed is when the finding was made (the agent fills in now when 0).
	Executed int64    `json:"executed"`
	Handlers []string `json:"handlers,omitempty"`
}

// ObjectMeta names a Sensu resource.
type ObjectMeta struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Metrics is Sensu's metric format: points, and the handlers that store
// them (none: the event's check handlers see them).
type Metrics struct {
	Handlers []string      `json:"handlers"`
	Points   []MetricPoint `json:"points"`
}

// MetricPoint is one sample.
type MetricPoint struct {
	Name      string      `json:"name"`
	Value     float64     `json:"value"`
	Timestamp int64       `json:"timestamp"`
	Tags      []MetricTag `json:"tags"`
}

// MetricTag is a name/value label of a point.
type MetricTag struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}
