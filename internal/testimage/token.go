package testimage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Token-auth names written into the registry's config; the tokens we sign
// must carry exactly these as issuer and audience or distribution refuses them.
const (
	TokenService = "berth-test"
	TokenIssuer  = "berth-test-issuer"
)

// tokenServer is the realm of a token-auth registry: the Docker token
// protocol's authorization service, run in-process. It checks the basic-auth
// credentials a client sends with its token request and hands back an ES256
// JWT that grants the requested repository actions. The signing key's
// self-signed certificate is both the registry's rootcertbundle and the
// token's x5c chain, which is how distribution finds the key to verify with.
type tokenServer struct {
	srv                *httptest.Server
	user, password     string
	certDER            []byte
	mu                 sync.Mutex
	key                *ecdsa.PrivateKey // guarded by mu: a test swaps it to forge tokens
	requests, refused  int
	anonymous, granted int
}

// startTokenServer listens on 127.0.0.1 (httptest's default) and writes the
// signing certificate as PEM to certPath. Stopped on t.Cleanup.
func startTokenServer(t testing.TB, user, password, certPath string) *tokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: TokenIssuer},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := &tokenServer{user: user, password: password, key: key, certDER: der}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

// realm names the server by host name, not by its 127.0.0.1 literal:
// go-containerregistry (v0.22+) refuses a token realm at a loopback or
// private IP literal unless it is the registry's own host:port, an SSRF
// guard. A host name is what real deployments use anyway.
func (ts *tokenServer) realm() string {
	return "http://localhost:" + strconv.Itoa(ts.srv.Listener.Addr().(*net.TCPAddr).Port) + "/token"
}

// serve answers GET /token?service=..&scope=repository:NAME:ACTIONS (basic
// auth) and the OAuth2 form POST (grant_type=password) some clients use.
// Wrong credentials get 401; no credentials get a token without access, as
// public token services do, so the registry itself then refuses.
func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.requests++
	ts.mu.Unlock()
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	var user, password string
	var hasCreds bool
	var scopes []string
	service := r.URL.Query().Get("service")
	switch r.Method {
	case http.MethodGet:
		user, password, hasCreds = r.BasicAuth()
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("grant_type") != "password" {
			http.Error(w, "unsupported grant_type", http.StatusBadRequest)
			return
		}
		user, password, hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		service = r.PostForm.Get("service")
		scopes = strings.Fields(r.PostForm.Get("scope"))
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if service != TokenService {
		http.Error(w, fmt.Sprintf("unknown service %q", service), http.StatusBadRequest)
		return
	}
	if hasCreds && (user != ts.user || password != ts.password) {
		ts.mu.Lock()
		ts.refused++
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"details":"incorrect username or password"}`))
		return
	}
	access := []map[string]any{}
	if hasCreds {
		for _, s := range scopes {
			// repository:NAME:ACTIONS; NAME may not hold ':' but split
			// from both ends anyway.
			first, last := strings.Index(s, ":"), strings.LastIndex(s, ":")
			if first < 0 || first == last || s[:first] != "repository" {
				continue
			}
			var actions []string
			for _, a := range strings.Split(s[last+1:], ",") {
				if a == "pull" || a == "push" {
					actions = append(actions, a)
				}
			}
			access = append(access, map[string]any{"type": "repository", "name": s[first+1 : last], "actions": actions})
		}
	} else {
		user = ""
	}
	tok, err := ts.sign(user, access)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.mu.Lock()
	if hasCreds {
		ts.granted++
	} else {
		ts.anonymous++
	}
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok, "expires_in": 300,
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

// sign builds a compact JWS (ES256: raw r||s, 32 bytes each).
func (ts *tokenServer) sign(subject string, access []map[string]any) (string, error) {
	now := time.Now()
	jti := make([]byte, 16)
	rand.Read(jti)
	header, err := json.Marshal(map[string]any{
		"typ": "JWT", "alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)},
	})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"iss": TokenIssuer, "sub": subject, "aud": TokenService,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": hex.EncodeToString(jti), "access": access,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signed))
	ts.mu.Lock()
	key := ts.key
	ts.mu.Unlock()
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig), nil
}

// TokenStats counts the token server's traffic (all zero for a registry
// without token auth): every request, tokens granted to good credentials,
// anonymous tokens (no access), and requests refused for bad credentials.
type TokenStats struct {
	Requests, Granted, Anonymous, Refused int
}

// TokenStats reports what the token server has seen so far, so a test can
// prove a pull really went through the token dance.
func (r *RegistryServer) TokenStats() TokenStats {
	ts := r.token
	if ts == nil {
		return TokenStats{}
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return TokenStats{Requests: ts.requests, Granted: ts.granted, Anonymous: ts.anonymous, Refused: ts.refused}
}
