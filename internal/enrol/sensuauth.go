package enrol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// SensuAuth checks an agent's Sensu credentials the way sensu-backend
// would: GET /auth on the Sensu API with HTTP Basic auth answers 200 (with
// tokens, discarded here) for valid credentials and 401 otherwise.
type SensuAuth struct {
	URL    string // the API's base URL, such as https://127.0.0.1:8080
	client *http.Client
}

// ErrBadCredentials is the Sensu API refusing the credentials.
var ErrBadCredentials = errors.New("the Sensu API refused the credentials")

// NewSensuAuth checks credentials at apiURL; roots verify an https API.
func NewSensuAuth(apiURL string, roots *x509.CertPool) *SensuAuth {
	return &SensuAuth{
		URL: strings.TrimSuffix(apiURL, "/"),
		client: &http.Client{
			Timeout: 15 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
				Proxy:           nil, // credentials go to the configured API, never to a proxy
			},
		},
	}
}

// Check returns nil for valid credentials, ErrBadCredentials for invalid
// ones, and another error when the API cannot tell.
func (a *SensuAuth) Check(ctx context.Context, user, password string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/auth", nil)
	if err != nil {
		return fmt.Errorf("sensu-api-url %s: %w", a.URL, err)
	}
	req.SetBasicAuth(user, password)
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("checking credentials with the Sensu API: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // the tokens are not ours to keep
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrBadCredentials
	}
	return fmt.Errorf("the Sensu API at %s answered GET /auth with %s", a.URL, resp.Status)
}
