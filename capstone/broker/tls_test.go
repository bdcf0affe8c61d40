//go:build floodgate.solution

package broker

import (
	"context"
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

	"floodgate/capstone/listeners"
	auth "floodgate/ch03-networking/07-auth"
	paho3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "floodgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// The TLS listener (chapter 3's auth.ServerTLS) serves MQTT over TLS.
func TestRun_TLSListener(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	b, err := New(Config{SysInterval: -1, Listeners: listeners.Config{TCP: listeners.Off, WS: listeners.Off,
		TLS: "127.0.0.1:0", TLSOptions: auth.TLSOptions{CertFile: certFile, KeyFile: keyFile}}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan map[string]net.Addr, 1)
	ran := make(chan error, 1)
	go func() { ran <- b.Run(ctx, func(a map[string]net.Addr) { addrs <- a }) }()
	a := <-addrs
	defer func() {
		cancel()
		assert.NoError(t, <-ran)
	}()
	c, err := tryV3(t, paho3.NewClientOptions().AddBroker("ssl://"+a["tls"].String()).SetClientID("secure").
		SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait))
	require.NoError(t, err, "MQTT over TLS")
	c.sub(t, "tls", 1)
	c.pub(t, "tls", 1, false, "encrypted")
	assert.Equal(t, "encrypted", next(t, c.msgs).payload)
	c.Disconnect(0)
}

// A TLS listener without a certificate is a clear start-up error.
func TestRun_TLSWithoutCertificate(t *testing.T) {
	b, err := New(Config{Listeners: listeners.Config{TCP: listeners.Off, WS: listeners.Off, TLS: "127.0.0.1:0"}})
	require.NoError(t, err)
	err = b.Run(context.Background(), nil)
	require.ErrorIs(t, err, auth.ErrNoCertificate)
	assert.Contains(t, err.Error(), "MQTT over TLS")
}
