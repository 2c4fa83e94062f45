#!/bin/bash
# Make a private CA, a server certificate for the pool and a client certificate for the StateFun runtime, with
# the openssl CLI (docs/tls.md). For trying TLS out and for the tests; in production use your own PKI or
# cert-manager.
#
#   scripts/make-certs.sh OUT_DIR [NAME ...]
#
# NAMEs are the server certificate's DNS names (an IPv4 address becomes an IP entry); by default the pool's
# Service names in the statefun namespace, localhost and 127.0.0.1. CERT_DAYS (365) sets the validity.
# Writes into OUT_DIR (made if missing):
#   ca.crt ca.key           the CA: the pool checks client certificates against ca.crt, the runtime the server's
#   server.crt server.key   the pool's certificate (serverAuth) and key
#   client.crt client.key   the runtime's certificate (clientAuth) and key
# Keys are EC P-256 in PKCS#8 PEM ("BEGIN PRIVATE KEY"), unencrypted: the runtime's Netty client reads client
# keys only in PKCS#8, and the pool reads keys without a password.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 OUT_DIR [SERVER_DNS_NAME_OR_IP ...]" >&2
  exit 2
fi
out=$1
shift
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(statefun-functions.statefun.svc.cluster.local statefun-functions.statefun.svc statefun-functions
         localhost 127.0.0.1)
fi
days=${CERT_DAYS:-365}
mkdir -p "$out"
cd "$out"
umask 077

san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA: self-signed, allowed to sign certificates and nothing else.
key ca.key
openssl req -x509 -new -key ca.key -out ca.crt -days "$days" -subj "/CN=statefun-workers test CA $RANDOM" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash"

# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt, signed by the CA.
sign() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

sign server "/CN=${names[0]}" "extendedKeyUsage=serverAuth
subjectAltName=${san%,}"
sign client "/CN=statefun-runtime" "extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 644 ./*.crt
echo "wrote $(pwd)/{ca,server,client}.{crt,key}"
