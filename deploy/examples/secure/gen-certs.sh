#!/usr/bin/env bash
# Makes everything the secure example needs in OUTDIR, with openssl:
#   ca.pem, ca.key           a certificate authority (10 years)
#   broker.pem, broker.key   the broker's certificate for 127.0.0.1 and localhost, signed by the CA
#   client.pem, client.key   a client certificate (CN=client,OU=apps,O=Chronik Example), for mTLS
#   admin.password           a random password for the PLAIN super user `admin`
#   plain-users.txt          PLAIN's static users (`admin:<password>`), read by the broker
#   admin.properties         client settings of `admin` for Kafka's CLI tools (--command-config)
#   chronik.toml             the example's configuration, run from OUTDIR
# Existing files are kept (run it again to add what is missing); delete OUTDIR to start over.
# usage: gen-certs.sh OUTDIR
set -euo pipefail
out=${1:?usage: gen-certs.sh OUTDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$out"
cd "$out"
umask 077

if [[ ! -f ca.pem ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/O=Chronik Example/CN=Chronik Example CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout ca.key -out ca.pem 2>/dev/null
fi

# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.pem signed by the CA.
sign() {
    local name=$1 subject=$2 ext=$3
    [[ -f $name.pem ]] && return 0
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
        -keyout "$name.key" -out "$name.csr" 2>/dev/null
    printf '%s\n' "$ext" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
        -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}
sign broker "/O=Chronik Example/CN=localhost" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"
sign client "/O=Chronik Example/OU=apps/CN=client" \
    "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

if [[ ! -f admin.password ]]; then
    openssl rand -base64 24 | tr -d '/+=\n' >admin.password
fi
printf 'admin:%s\n' "$(cat admin.password)" >plain-users.txt
cat >admin.properties <<EOF
security.protocol=SASL_SSL
ssl.truststore.type=PEM
ssl.truststore.location=$(pwd)/ca.pem
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$(cat admin.password)";
EOF
[[ -f chronik.toml ]] || cp "$here/chronik.toml" chronik.toml
# The certificates are public; keys and passwords stay readable by their owner only.
chmod 644 ca.pem broker.pem client.pem chronik.toml
echo "made $out: ca.pem broker.pem/.key client.pem/.key admin.password plain-users.txt admin.properties chronik.toml"
