package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testPKI is a throw-away public key infrastructure made at run time: a
// trusted CA, a server certificate for 127.0.0.1, a client certificate from
// the same CA, and a client certificate from a second CA nobody trusts.
type testPKI struct {
	caFile, serverCert, serverKey, rogueCAFile string // PEM files in t.TempDir()

	caPool, roguePool *x509.CertPool
	client, rogue     tls.Certificate // client certificates, from the CA and from the rogue CA
}

// authority is a CA certificate and its key.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca := newAuthority(t, "Floodgate test CA")
	rogueCA := newAuthority(t, "Rogue CA")

	serverDER, serverKey := ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "floodgate broker"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	clientTemplate := func() *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: "dev-42"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
	}
	clientDER, clientKey := ca.issue(t, clientTemplate())
	rogueDER, rogueKey := rogueCA.issue(t, clientTemplate())

	p := &testPKI{
		caFile:      writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.cert.Raw),
		rogueCAFile: writePEM(t, dir, "rogue-ca.pem", "CERTIFICATE", rogueCA.cert.Raw),
		serverCert:  writePEM(t, dir, "server.pem", "CERTIFICATE", serverDER),
		serverKey:   writePEM(t, dir, "server.key", "PRIVATE KEY", marshalKey(t, serverKey)),
		caPool:      x509.NewCertPool(),
		roguePool:   x509.NewCertPool(),
		client:      tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey},
		rogue:       tls.Certificate{Certificate: [][]byte{rogueDER}, PrivateKey: rogueKey},
	}
	p.caPool.AddCert(ca.cert)
	p.roguePool.AddCert(rogueCA.cert)
	return p
}

func newAuthority(t *testing.T, name string) authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return authority{cert: cert, key: key}
}

// issue signs a new ECDSA P-256 key's certificate, built from tmpl, with a.
func (a authority) issue(t *testing.T, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	require.NoError(t, err)
	return der, key
}

func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	require.NoError(t, err)
	return n
}

func marshalKey(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return der
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600))
	return path
}

// handshakeResult is what each side of one TLS connection saw.
type handshakeResult struct {
	serverErr, clientErr error
	serverState          tls.ConnectionState
}

// handshake runs one TLS connection over 127.0.0.1 between a listener with
// serverCfg and a client with clientCfg. After a successful handshake the
// server writes one byte and the client reads it: with TLS 1.3 the client
// learns that the server refused its certificate only on that first read.
// Every I/O has a deadline, so a broken configuration fails instead of
// hanging.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	require.NoError(t, err)
	defer ln.Close()

	type serverSide struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan serverSide, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverSide{err: err}
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- serverSide{err: err}
			return
		}
		_, err = tc.Write([]byte{'k'})
		done <- serverSide{err: err, state: tc.ConnectionState()}
	}()

	var res handshakeResult
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: clientCfg}
	conn, err := dialer.Dial("tcp", ln.Addr().String())
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		_, err = conn.Read(b[:])
		conn.Close()
	}
	res.clientErr = err
	// The server has accepted by now unless the TCP connection itself failed;
	// closing the listener unblocks Accept in that case.
	ln.Close()
	s := <-done
	res.serverErr, res.serverState = s.err, s.state
	return res
}
