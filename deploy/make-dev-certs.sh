#!/usr/bin/env bash
# Development certificates for a Rampart site: a CA, a broker certificate for
# 127.0.0.1/localhost, and one client certificate per identity given.
#   deploy/make-dev-certs.sh OUT_DIR rampart-dc-east-1 radar-1 rf-1 ats-1
# Never use these in production: the CA key sits beside them unprotected.
set -euo pipefail
out=${1:?usage: make-dev-certs.sh OUT_DIR CLIENT_CN...}
shift
mkdir -p "$out"
cd "$out"
days=825
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=Rampart development CA" -keyout ca.key -out ca.pem 2>/dev/null
fi
issue() {  # issue NAME CN EXTFILE
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$3" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
  chmod 600 "$1.key"
}
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
[ -f broker.pem ] || issue broker localhost server.ext
for cn in "$@"; do
  [ -f "$cn.pem" ] || issue "$cn" "$cn" client.ext
done
rm -f server.ext client.ext
echo "certificates in $out: ca.pem broker.pem $(printf '%s.pem ' "$@")"
