#!/bin/sh
# Makes a DEVELOPMENT signing identity with openssl: a fake CA standing in for Apple's WWDR intermediate and a
# Pass Type ID certificate issued by it (UID = pass type id, OU = team id, as Apple lays them out).
#
# Passes signed with it are well formed, but they WILL NOT INSTALL ON REAL DEVICES: iOS only accepts
# signatures that chain to Apple's root. Use it for local development and tests only.
# (Without any certificates the server generates an equivalent identity by itself in DATA_DIR/dev-certificates.)
#
# Usage: ./make-dev-identity.sh <out-dir> [passTypeIdentifier] [teamIdentifier]
#   e.g. ./make-dev-identity.sh ./certificates pass.dev.passkit-server DEVTEAM000
set -eu

out=${1:?usage: $0 <out-dir> [passTypeIdentifier] [teamIdentifier]}
pass_type_id=${2:-pass.dev.passkit-server}
team_id=${3:-DEVTEAM000}

mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The fake WWDR CA (its key stays in the temporary folder and is deleted on exit).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$out/wwdr.pem" -days 3650 \
  -subj "/CN=Development WWDR CA (not Apple)/O=passkit-server development" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# The Pass Type ID certificate.
openssl req -new -newkey rsa:2048 -nodes -keyout "$work/signer.key" -out "$work/signer.csr" \
  -subj "/UID=$pass_type_id/CN=Pass Type ID: $pass_type_id/OU=$team_id/O=passkit-server development/C=US" 2>/dev/null
cat > "$work/signer.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
1.2.840.113635.100.6.1.16=ASN1:UTF8String:$pass_type_id
EOF
openssl x509 -req -in "$work/signer.csr" -CA "$out/wwdr.pem" -CAkey "$work/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
  -days 3650 -sha256 -extfile "$work/signer.ext" -out "$out/signerCert.pem" 2>/dev/null

(umask 077 && openssl pkey -in "$work/signer.key" -out "$out/signerKey.pem")

echo "Development identity for $pass_type_id (team $team_id) written to $out:"
echo "  signerCert.pem  signerKey.pem  wwdr.pem"
echo "Passes signed with it will NOT install on real devices."
