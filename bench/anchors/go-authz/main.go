// The Go anchor of `npm run bench`: a minimal grpc-go ext_authz server doing the work a fair competitor
// must do for the same request: ES256 verification of the bearer token (with a cache keyed by the
// token), issuer/audience/expiry checks, a role check per domain from context_extensions, and an
// allow shaped like mesh-pep's (the same header mutations, pseudonym and dynamic metadata). It writes
// no audit record. It exists to measure against, never to serve.
//
// Usage: go-authz -addr 127.0.0.1:0 -jwks FILE -issuer ISS -audience AUD -domain NAME=ROLE,ROLE[:masked] ...
// Prints {"port": n} once listening.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/golang-jwt/jwt/v5"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type domain struct {
	roles  map[string]bool
	masked bool
}

type domainFlags map[string]domain

func (d domainFlags) String() string { return fmt.Sprint(len(d)) }
func (d domainFlags) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("domain %q: want NAME=ROLE,ROLE[:masked]", v)
	}
	roles, opt, _ := strings.Cut(rest, ":")
	dm := domain{roles: map[string]bool{}, masked: opt == "masked"}
	for _, r := range strings.Split(roles, ",") {
		dm.roles[r] = true
	}
	d[name] = dm
	return nil
}

type claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

type cached struct {
	sub, role string
	exp       time.Time
}

type server struct {
	authv3.UnimplementedAuthorizationServer
	key      *ecdsa.PublicKey
	parser   *jwt.Parser
	domains  domainFlags
	pseudo   []byte
	mu       sync.RWMutex
	cache    map[string]cached
}

// Topology headers removed in masking domains: the list mesh-pep's contract names.
var topology = []string{"x-forwarded-for", "x-real-ip", "forwarded", "via", "x-forwarded-client-cert", "x-envoy-peer-metadata",
	"x-envoy-peer-metadata-id", "x-envoy-attempt-count", "x-envoy-expected-rq-timeout-ms", "x-envoy-original-path",
	"x-envoy-internal", "x-envoy-external-address", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node",
	"x-envoy-decorator-operation", "user-agent", "x-sender-ip", "x-routing-path", "x-internal-id", "x-timestamp"}

func deny(grpcCode int32, httpCode typev3.StatusCode, reason string) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: grpcCode, Message: reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: httpCode},
			Headers: []*corev3.HeaderValueOption{hv("x-mesh-reason", reason), hv("content-type", "application/json")},
			Body:    `{"error":"denied","reason":"` + reason + `"}`,
		}},
	}
}

func hv(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, Append: wrapperspb.Bool(false)}
}

func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *server) verify(token string) (cached, bool) {
	now := time.Now()
	s.mu.RLock()
	c, ok := s.cache[token]
	s.mu.RUnlock()
	if ok && now.Before(c.exp) {
		return c, true
	}
	var cl claims
	if _, err := s.parser.ParseWithClaims(token, &cl, func(*jwt.Token) (any, error) { return s.key, nil }); err != nil {
		return cached{}, false
	}
	if cl.ExpiresAt == nil {
		return cached{}, false
	}
	c = cached{sub: cl.Subject, role: cl.Role, exp: cl.ExpiresAt.Time}
	s.mu.Lock()
	if len(s.cache) > 10000 {
		s.cache = map[string]cached{}
	}
	s.cache[token] = c
	s.mu.Unlock()
	return c, true
}

func (s *server) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	attrs := req.GetAttributes()
	name := attrs.GetContextExtensions()["domain"]
	dm, ok := s.domains[name]
	if !ok {
		return deny(7, typev3.StatusCode_Forbidden, "no_policy"), nil
	}
	headers := attrs.GetRequest().GetHttp().GetHeaders()
	authz := headers["authorization"]
	if !strings.HasPrefix(authz, "Bearer ") {
		return deny(16, typev3.StatusCode_Unauthorized, "missing_credential"), nil
	}
	c, ok := s.verify(authz[len("Bearer "):])
	if !ok {
		return deny(16, typev3.StatusCode_Unauthorized, "invalid_credential"), nil
	}
	if !dm.roles[c.role] {
		return deny(7, typev3.StatusCode_Forbidden, "role_not_allowed"), nil
	}
	id := uuid4()
	agentHeader, agentValue := "x-agent-id", c.sub
	if dm.masked {
		mac := hmac.New(sha256.New, s.pseudo)
		mac.Write([]byte(name + "\x00" + c.sub))
		agentHeader, agentValue = "x-agent-pseudonym", base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
	}
	remove := []string{"authorization"}
	if dm.masked {
		for _, h := range topology {
			if _, present := headers[h]; present {
				remove = append(remove, h)
			}
		}
	}
	md, _ := structpb.NewStruct(map[string]any{"domain": name, "tier": "RETRIEVAL", "role": c.role, "decision_id": id, strings.TrimPrefix(strings.ReplaceAll(agentHeader, "-", "_"), "x_"): agentValue})
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: 0},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         []*corev3.HeaderValueOption{hv("x-agent-role", c.role), hv("x-mesh-domain", name), hv("x-mesh-tier", "RETRIEVAL"), hv("x-mesh-decision-id", id), hv(agentHeader, agentValue)},
			HeadersToRemove: remove,
		}},
		DynamicMetadata: md,
	}, nil
}

type jwk struct {
	Kty, Crv, X, Y string
}

func loadKey(file string) (*ecdsa.PublicKey, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" {
			continue
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad EC key coordinates")
		}
		return &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}, nil
	}
	return nil, fmt.Errorf("%s has no EC P-256 key", file)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	jwksFile := flag.String("jwks", "", "issuer JWK Set (EC P-256)")
	issuer := flag.String("issuer", "", "expected iss")
	audience := flag.String("audience", "", "expected aud")
	domains := domainFlags{}
	flag.Var(domains, "domain", "NAME=ROLE,ROLE[:masked] (repeatable)")
	flag.Parse()
	key, err := loadKey(*jwksFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-authz:", err)
		os.Exit(2)
	}
	pseudo := make([]byte, 32)
	_, _ = rand.Read(pseudo)
	s := &server{
		key:     key,
		parser:  jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(*issuer), jwt.WithAudience(*audience), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second)),
		domains: domains,
		pseudo:  pseudo,
		cache:   map[string]cached{},
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-authz:", err)
		os.Exit(1)
	}
	g := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	authv3.RegisterAuthorizationServer(g, s)
	fmt.Printf("{\"port\": %d}\n", lis.Addr().(*net.TCPAddr).Port)
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "go-authz:", err)
		os.Exit(1)
	}
}
