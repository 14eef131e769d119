package compat

// franz-go against a broker with secured listeners: SCRAM-SHA-256, SCRAM-SHA-512, PLAIN and
// OAUTHBEARER over SASL_SSL, and TLS with a client certificate (mTLS). Each mechanism has a test
// that creates a topic, produces, consumes the records back exactly and makes a kadm call, and a
// test whose bad credentials must fail with an authentication error while a good client is
// served right after. tests/compat/python/test_security_franz_go.py starts the broker, makes the
// SCRAM user and sets the environment below; without it the tests skip (the plain franz-go
// suite runs against a PLAINTEXT broker).
//
//	CHRONIK_SECURE_SASL_SSL        host:port of a SASL_SSL listener offering PLAIN and SCRAM
//	CHRONIK_SECURE_OAUTH           host:port of a SASL_SSL listener offering OAUTHBEARER
//	CHRONIK_SECURE_MTLS            host:port of an SSL listener requiring client certificates
//	CHRONIK_SECURE_CERTS           directory of gen-certs.sh's output: ca.pem, client.pem/.key,
//	                               admin.password, and rogue/client.pem/.key of another CA
//	CHRONIK_SECURE_SCRAM_USER      a user with SCRAM-SHA-256 and SCRAM-SHA-512 credentials
//	CHRONIK_SECURE_SCRAM_PASSWORD  its password
//	CHRONIK_SECURE_SCRAM_ITERATIONS_256, CHRONIK_SECURE_SCRAM_ITERATIONS_512  their iterations
//	CHRONIK_SECURE_TOKEN           a JWT the broker accepts
//	CHRONIK_SECURE_EXPIRED_TOKEN   a JWT of the same issuer that has expired
//	CHRONIK_SECURE_FOREIGN_TOKEN   a JWT signed by a key the broker does not know

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// secEnv returns the named CHRONIK_SECURE_ variable; every test skips when the suite's
// environment is absent, and fails when it is only partly there.
func secEnv(t *testing.T, name string) string {
	t.Helper()
	if os.Getenv("CHRONIK_SECURE_SASL_SSL") == "" {
		t.Skip("CHRONIK_SECURE_* not set: run by tests/compat/python/test_security_franz_go.py")
	}
	v := os.Getenv("CHRONIK_SECURE_" + name)
	if v == "" {
		t.Fatalf("CHRONIK_SECURE_%s is not set", name)
	}
	return v
}

// secTLS trusts the example CA; with client set ("client" or "rogue"), it presents that client
// certificate.
func secTLS(t *testing.T, client string) *tls.Config {
	t.Helper()
	dir := secEnv(t, "CERTS")
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("no certificate in ca.pem")
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if client != "" {
		base := dir
		if client == "rogue" {
			base = filepath.Join(dir, "rogue")
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(base, "client.pem"), filepath.Join(base, "client.key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// secMechanism is the SASL mechanism `name` with the suite's good credentials, or with `secret`
// (a password or a token) instead when it is not empty.
func secMechanism(t *testing.T, name, secret string) sasl.Mechanism {
	t.Helper()
	switch name {
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		if secret == "" {
			secret = secEnv(t, "SCRAM_PASSWORD")
		}
		a := scram.Auth{User: secEnv(t, "SCRAM_USER"), Pass: secret}
		if name == "SCRAM-SHA-256" {
			return a.AsSha256Mechanism()
		}
		return a.AsSha512Mechanism()
	case "PLAIN":
		if secret == "" {
			secret = adminPassword(t)
		}
		return plain.Auth{User: "admin", Pass: secret}.AsMechanism()
	case "OAUTHBEARER":
		if secret == "" {
			secret = secEnv(t, "TOKEN")
		}
		return oauth.Auth{Token: secret}.AsMechanism()
	}
	t.Fatalf("unknown mechanism %s", name)
	return nil
}

func adminPassword(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(secEnv(t, "CERTS"), "admin.password"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// secOpts are the client options for `mechanism` ("MTLS" for a client certificate) with the
// good credentials, or with `bad` (a password, a token, or "rogue" for MTLS) instead.
func secOpts(t *testing.T, mechanism, bad string) []kgo.Opt {
	t.Helper()
	switch mechanism {
	case "MTLS":
		cert := "client"
		if bad != "" {
			cert = bad
		}
		return []kgo.Opt{kgo.SeedBrokers(secEnv(t, "MTLS")), kgo.DialTLSConfig(secTLS(t, cert))}
	case "OAUTHBEARER":
		return []kgo.Opt{kgo.SeedBrokers(secEnv(t, "OAUTH")), kgo.DialTLSConfig(secTLS(t, "")),
			kgo.SASL(secMechanism(t, mechanism, bad))}
	default:
		return []kgo.Opt{kgo.SeedBrokers(secEnv(t, "SASL_SSL")), kgo.DialTLSConfig(secTLS(t, "")),
			kgo.SASL(secMechanism(t, mechanism, bad))}
	}
}

func secClient(t *testing.T, mechanism, bad string, more ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts := append(secOpts(t, mechanism, bad), kgo.RequestTimeoutOverhead(10*time.Second),
		kgo.RetryTimeout(15*time.Second))
	cl, err := kgo.NewClient(append(opts, more...)...)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// secRoundTrip creates a topic, produces n records, reads them back from the start of the
// partition and checks them one by one; then lists topics with kadm. Returns the admin client.
func secRoundTrip(t *testing.T, mechanism string) *kadm.Client {
	t.Helper()
	label := strings.ToLower(strings.ReplaceAll(mechanism, "-", ""))
	topic := topicName("security-" + label)
	cl := secClient(t, mechanism, "")
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx(t), 1, 1, nil, topic)
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	if r := resp[topic]; r.Err != nil {
		t.Fatalf("create %s: %v (%s)", topic, r.Err, r.ErrMessage)
	}

	const n = 30
	var records []*kgo.Record
	for i := 0; i < n; i++ {
		records = append(records, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)),
			Value: []byte(fmt.Sprintf("%s-value-%d", mechanism, i))})
	}
	if err := cl.ProduceSync(ctx(t), records...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	consumer := secClient(t, mechanism, "", kgo.FetchMaxWait(200*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	var got []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		pc, cancel := context.WithTimeout(context.Background(), time.Second)
		fetches := consumer.PollFetches(pc)
		cancel()
		fetches.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", tp, p, err)
			}
		})
		got = append(got, fetches.Records()...)
	}
	if len(got) != n {
		t.Fatalf("consumed %d of %d records", len(got), n)
	}
	for i, r := range got {
		if r.Offset != int64(i) || string(r.Key) != string(records[i].Key) || string(r.Value) != string(records[i].Value) {
			t.Fatalf("record %d: offset %d key %q value %q; want key %q value %q", i, r.Offset, r.Key, r.Value,
				records[i].Key, records[i].Value)
		}
	}

	listed, err := adm.ListTopics(ctx(t), topic)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	if d, ok := listed[topic]; !ok || d.Err != nil || len(d.Partitions) != 1 {
		t.Fatalf("topic %s listed as %+v", topic, listed[topic])
	}
	return adm
}

func TestSecuritySCRAMSHA256(t *testing.T) {
	adm := secRoundTrip(t, "SCRAM-SHA-256")
	secCheckSCRAMUser(t, adm)
}

func TestSecuritySCRAMSHA512(t *testing.T) {
	adm := secRoundTrip(t, "SCRAM-SHA-512")
	secCheckSCRAMUser(t, adm)
}

// secCheckSCRAMUser describes the SCRAM user with kadm: both mechanisms, with the iterations
// the suite created them with.
func secCheckSCRAMUser(t *testing.T, adm *kadm.Client) {
	t.Helper()
	user := secEnv(t, "SCRAM_USER")
	want := map[kadm.ScramMechanism]int32{}
	for mech, name := range map[kadm.ScramMechanism]string{kadm.ScramSha256: "SCRAM_ITERATIONS_256",
		kadm.ScramSha512: "SCRAM_ITERATIONS_512"} {
		n, err := strconv.Atoi(secEnv(t, name))
		if err != nil {
			t.Fatal(err)
		}
		want[mech] = int32(n)
	}
	described, err := adm.DescribeUserSCRAMs(ctx(t), user)
	if err != nil {
		t.Fatalf("describe SCRAM users: %v", err)
	}
	d, ok := described[user]
	if !ok || d.Err != nil {
		t.Fatalf("%s described as %+v", user, d)
	}
	got := map[kadm.ScramMechanism]int32{}
	for _, c := range d.CredInfos {
		got[c.Mechanism] = c.Iterations
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s has credentials %v, want %v", user, got, want)
	}
}

func TestSecurityPlain(t *testing.T) { secRoundTrip(t, "PLAIN") }

func TestSecurityOAuthBearer(t *testing.T) { secRoundTrip(t, "OAUTHBEARER") }

func TestSecurityMTLS(t *testing.T) { secRoundTrip(t, "MTLS") }

// secRefused checks that a client of `mechanism` with `bad` credentials fails with an
// authentication error, which `isAuthError` recognizes, and that a good client is served
// right after.
func secRefused(t *testing.T, mechanism, bad string, isAuthError func(error) bool) {
	t.Helper()
	cl := secClient(t, mechanism, bad)
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := kadm.NewClient(cl).ListTopics(c)
	if err == nil {
		t.Fatalf("%s with bad credentials listed topics", mechanism)
	}
	if !isAuthError(err) {
		t.Fatalf("%s with bad credentials: %v (%T), not an authentication error", mechanism, err, err)
	}
	t.Logf("%s refused as expected: %v", mechanism, err)
	cl.Close()

	good := kadm.NewClient(secClient(t, mechanism, ""))
	if _, err := good.ListTopics(ctx(t)); err != nil {
		t.Fatalf("a good %s client after the refused one: %v", mechanism, err)
	}
}

// saslRefused: the broker answered SaslAuthenticate with SASL_AUTHENTICATION_FAILED and `reason`.
func saslRefused(reason string) func(error) bool {
	return func(err error) bool {
		return errors.Is(err, kerr.SaslAuthenticationFailed) && strings.Contains(err.Error(), reason)
	}
}

func TestSecuritySCRAMSHA256BadPassword(t *testing.T) {
	secRefused(t, "SCRAM-SHA-256", "not-the-password", saslRefused("Invalid username or password"))
}

func TestSecuritySCRAMSHA512BadPassword(t *testing.T) {
	secRefused(t, "SCRAM-SHA-512", "not-the-password", saslRefused("Invalid username or password"))
}

func TestSecurityPlainBadPassword(t *testing.T) {
	secRefused(t, "PLAIN", "not-the-password", saslRefused("Invalid username or password"))
}

func TestSecurityOAuthBearerBadTokens(t *testing.T) {
	secEnv(t, "OAUTH")
	t.Run("expired", func(t *testing.T) {
		secRefused(t, "OAUTHBEARER", secEnv(t, "EXPIRED_TOKEN"), saslRefused("the token has expired"))
	})
	t.Run("unknown-key", func(t *testing.T) {
		secRefused(t, "OAUTHBEARER", secEnv(t, "FOREIGN_TOKEN"), saslRefused("signature verification failed"))
	})
}

func TestSecurityMTLSUnknownCA(t *testing.T) {
	// With TLS 1.3 the client's handshake ends before the broker has checked its certificate;
	// the refusal arrives as the broker's TLS alert on the first read.
	secRefused(t, "MTLS", "rogue", func(err error) bool {
		return strings.Contains(err.Error(), "remote error: tls:")
	})
}
