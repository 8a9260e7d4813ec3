#!/bin/sh
# An exec issuer for sensu-tlsd that signs with cfssl, following the Sensu
# security guide's recipe. Use it in the config as:
#
#   issuer:
#     type: exec
#     exec:
#       command: [/bin/sh, /etc/sensu/exec-cfssl.sh, /etc/sensu/ca]
#
# $1 is the directory holding ca.pem and ca-key.pem. sensu-tlsd runs this in
# an empty private directory and names the files to write in
# SENSU_TLSD_CERT_FILE, SENSU_TLSD_KEY_FILE and SENSU_TLSD_CA_FILE; it
# validates what was written before installing anything.
set -eu
ca_dir=${1:?usage: exec-cfssl.sh CA-DIR (the directory with ca.pem and ca-key.pem)}
cat >ca-config.json <<JSON
{"signing":{"default":{"expiry":"${SENSU_TLSD_LIFETIME}","usages":["signing","key encipherment","server auth","client auth"]}}}
JSON
echo '{"CN":"'"$SENSU_TLSD_COMMON_NAME"'","hosts":[""],"key":{"algo":"ecdsa","size":256}}' |
	cfssl gencert -config=ca-config.json -ca="$ca_dir/ca.pem" -ca-key="$ca_dir/ca-key.pem" \
		-hostname="$SENSU_TLSD_HOSTS" - |
	cfssljson -bare out
mv out.pem "$SENSU_TLSD_CERT_FILE"
mv out-key.pem "$SENSU_TLSD_KEY_FILE"
cp "$ca_dir/ca.pem" "$SENSU_TLSD_CA_FILE"
