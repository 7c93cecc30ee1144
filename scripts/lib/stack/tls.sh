# shellcheck shell=bash disable=SC2153  # HOST, the ports and paths are set by stack.sh
# Test CA, server certificate and an unrelated second CA, for scripts/stack.sh (sourced by it).
# The leaf certificate names IP:127.0.0.1 and DNS:localhost: rustls refuses a self-signed server
# certificate, so the servers present a leaf signed by the test CA, which the tests trust.

gen_ca() {
    local name=$1 cn=$2 cnf
    cnf="$(mktemp)"
    cat >"$cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = $cn
O = db-secret-rotator tests
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    (umask 077 && openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -config "$cnf" -keyout "$TLS_DIR/$name.key" -out "$TLS_DIR/$name.pem" 2>/dev/null)
    chmod 0644 "$TLS_DIR/$name.pem"
    rm -f "$cnf"
}

gen_leaf() {
    local ext csr
    ext="$(mktemp)"
    csr="$(mktemp)"
    cat >"$ext" <<'EOF'
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
    (umask 077 && openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout "$TLS_DIR/server.key" -out "$csr" 2>/dev/null)
    openssl x509 -req -sha256 -days 825 -in "$csr" -CA "$CA_PEM" -CAkey "$TLS_DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "$ext" -extensions v3_leaf \
        -out "$TLS_DIR/server.pem" 2>/dev/null
    chmod 0644 "$TLS_DIR/server.pem"
    rm -f "$ext" "$csr"
}

leaf_ok() {
    [[ -s $TLS_DIR/server.pem && -s $TLS_DIR/server.key ]] &&
        openssl verify -CAfile "$CA_PEM" "$TLS_DIR/server.pem" >/dev/null 2>&1 &&
        openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.pem" >/dev/null 2>&1
}

ensure_tls() {
    install -d -m 0755 "$TLS_DIR"
    if [[ ! -s $CA_PEM || ! -s $TLS_DIR/ca.key ]]; then
        log "generating test CA"
        gen_ca ca "db-secret-rotator test CA"
        rm -f "$TLS_DIR/server.pem"
    fi
    if [[ ! -s $OTHER_CA_PEM ]]; then
        log "generating the unrelated CA (other-ca.pem)"
        gen_ca other-ca "db-secret-rotator unrelated CA"
    fi
    if ! leaf_ok; then
        log "generating server certificate (IP:127.0.0.1, DNS:localhost)"
        gen_leaf
        leaf_ok || die "generated server certificate does not verify against $CA_PEM"
    fi
}

