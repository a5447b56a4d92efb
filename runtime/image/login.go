package image

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Login checks credentials against a registry (docker login): it asks the
// registry's /v2/ endpoint, through its token service when it has one, and
// succeeds only if the registry accepts them. Nothing is stored: the client
// keeps its credentials and sends them with each pull or push.
func (s *Store) Login(ctx context.Context, server string, auth authn.Authenticator) error {
	host := registryHost(server)
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		return fmt.Errorf("registry %q: %v", server, err)
	}
	// pull scope on a made-up repository: token services hand out a token
	// for valid credentials even when the repository does not exist.
	scopes := []string{reg.Repo("berth-login-check").Scope(transport.PullScope)}
	tr, err := transport.NewWithContext(ctx, reg, auth, s.transport(), scopes)
	if err != nil {
		return opError(ctx, "login to", reg.Repo("berth-login-check").Tag("latest"), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, (&url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/"}).String(), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return opError(ctx, "login to", reg.Repo("berth-login-check").Tag("latest"), err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return &RegistryError{Kind: ErrDenied, msg: fmt.Sprintf("registry %s refused the credentials (HTTP %d): check the user name and password", reg.RegistryStr(), resp.StatusCode)}
	}
	return fmt.Errorf("registry %s answered HTTP %d to a login check", reg.RegistryStr(), resp.StatusCode)
}

// registryHost turns what clients send as a server address
// ("https://index.docker.io/v1/", "localhost:5000", "ghcr.io") into a host.
func registryHost(server string) string {
	s := strings.TrimSpace(server)
	if s == "" {
		return name.DefaultRegistry
	}
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		s = u.Host
	} else {
		s, _, _ = strings.Cut(s, "/")
	}
	if s == "index.docker.io" || s == "docker.io" || s == "registry-1.docker.io" {
		return name.DefaultRegistry
	}
	return s
}
