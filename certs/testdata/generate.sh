#!/bin/sh
# Regenerates the TLS test fixtures used by the unit tests in src/tls.rs. Test-only material: the CA
# key is thrown away, and `localhost.key` protects nothing (it is published here on purpose).
#
#   test-ca.pem      self-signed CA "db-secret-rotator test CA" (ECDSA P-256)
#   localhost.pem    server certificate for DNS:localhost and IP:127.0.0.1, issued by test-ca.pem
#   localhost.key    its PKCS#8 private key (also serves as "a PEM file with no certificate")
#
# Run from this directory with OpenSSL 1.1.1 or later: sh generate.sh
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 36500 \
    -subj "/O=db-secret-rotator tests/CN=db-secret-rotator test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -keyout "$work/ca.key" -out test-ca.pem

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/O=db-secret-rotator tests/CN=localhost" \
    -keyout "$work/localhost.key" -out "$work/localhost.csr"
openssl pkcs8 -topk8 -nocrypt -in "$work/localhost.key" -out localhost.key

cat > "$work/leaf.ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -sha256 -days 36500 -in "$work/localhost.csr" \
    -CA test-ca.pem -CAkey "$work/ca.key" -set_serial 0x$(openssl rand -hex 16) \
    -extfile "$work/leaf.ext" -out localhost.pem
