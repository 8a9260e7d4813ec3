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
# validates what was written before installing anything. What to issue
# comes from the certificate's config: SENSU_TLSD_COMMON_NAME,
# SENSU_TLSD_HOSTS (comma-separated, possibly empty), SENSU_TLSD_PROFILE,
# SENSU_TLSD_KEY_TYPE and SENSU_TLSD_LIFETIME.
set -eu
ca_dir=${1:?usage: exec-cfssl.sh CA-DIR (the directory with ca.pem and ca-key.pem)}

# The guide's profiles, as extended key usages.
case $SENSU_TLSD_PROFILE in
backend | etcd-peer) eku='"server auth","client auth"' ;;
server) eku='"server auth"' ;;
etcd-client | agent | client) eku='"client auth"' ;;
*)
	echo "exec-cfssl.sh: unknown profile $SENSU_TLSD_PROFILE" >&2
	exit 1
	;;
esac

# Key encipherment serves only RSA key transport: ECDSA keys only sign.
case $SENSU_TLSD_KEY_TYPE in
ecdsa-p256) key='{"algo":"ecdsa","size":256}' usages='"digital signature"' ;;
ecdsa-p384) key='{"algo":"ecdsa","size":384}' usages='"digital signature"' ;;
rsa-2048 | rsa-3072 | rsa-4096)
	key='{"algo":"rsa","size":'"${SENSU_TLSD_KEY_TYPE#rsa-}"'}' usages='"digital signature","key encipherment"'
	;;
*)
	echo "exec-cfssl.sh: unknown key type $SENSU_TLSD_KEY_TYPE" >&2
	exit 1
	;;
esac

# Every host as a JSON string; none at all gives [], never the guide's
# [""], which leaves an empty DNS SAN.
hosts=""
old_ifs=$IFS
IFS=,
for h in $SENSU_TLSD_HOSTS; do
	if [ -n "$h" ]; then hosts="$hosts${hosts:+,}\"$h\""; fi
done
IFS=$old_ifs

cat >ca-config.json <<JSON
{"signing":{"profiles":{"$SENSU_TLSD_PROFILE":{"expiry":"$SENSU_TLSD_LIFETIME","usages":[$usages,$eku]}}}}
JSON
echo '{"CN":"'"$SENSU_TLSD_COMMON_NAME"'","hosts":['"$hosts"'],"key":'"$key"'}' |
	cfssl gencert -config=ca-config.json -profile="$SENSU_TLSD_PROFILE" \
		-ca="$ca_dir/ca.pem" -ca-key="$ca_dir/ca-key.pem" - |
	cfssljson -bare out
mv out.pem "$SENSU_TLSD_CERT_FILE"
mv out-key.pem "$SENSU_TLSD_KEY_FILE"
cp "$ca_dir/ca.pem" "$SENSU_TLSD_CA_FILE"
