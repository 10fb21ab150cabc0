#!/usr/bin/env bash
# Throwaway TLS credentials for the tests and the demo, in the layout of
# libvirt/QEMU (and ptrackd's --tls-dir): DIR/ca-cert.pem, server-cert.pem,
# server-key.pem, client-cert.pem, client-key.pem, made with certtool as
# libvirt's TLS docs show (ECDSA keys: fast to make). Also:
#   DIR/psk.txt           a psktool key file (identity "ptrack-test")
#   DIR/other/            the same CA, client CN "intruder" (for --tls-allowed)
#   DIR/rogue/            a whole other CA with its own server and client
# Server certificates name 127.0.0.1, ::1 and localhost.
# usage: make-certs.sh DIR [CLIENT_CN]
set -euo pipefail
dir=$1
cn=${2:-ptrack-source}
command -v certtool >/dev/null || { echo "make-certs: certtool missing (gnutls-bin)" >&2; exit 1; }
mkdir -p "$dir/other" "$dir/rogue"
cd "$dir"

key() { certtool --generate-privkey --key-type=ecdsa --outfile "$1" 2>/dev/null; }

# $1 dir, $2 CA name
make_ca() {
	key "$1/ca-key.pem"
	printf 'cn = %s\nca\ncert_signing_key\nexpiration_days = 30\n' "$2" > "$1/ca.info"
	certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
		--template "$1/ca.info" --outfile "$1/ca-cert.pem" 2>/dev/null
}

# $1 out dir, $2 CA dir, $3 server|client, $4 CN
make_cert() {
	local t="$1/$3.info"
	key "$1/$3-key.pem"
	{
		printf 'organization = ptrack tests\ncn = %s\nexpiration_days = 30\n' "$4"
		if [ "$3" = server ]; then
			printf 'ip_address = 127.0.0.1\nip_address = ::1\ndns_name = localhost\n'
			printf 'tls_www_server\nencryption_key\nsigning_key\n'
		else
			printf 'tls_www_client\nencryption_key\nsigning_key\n'
		fi
	} > "$t"
	certtool --generate-certificate --load-privkey "$1/$3-key.pem" \
		--load-ca-certificate "$2/ca-cert.pem" --load-ca-privkey "$2/ca-key.pem" \
		--template "$t" --outfile "$1/$3-cert.pem" 2>/dev/null
}

make_ca . "ptrack test CA"
make_cert . . server ptrack-peer
make_cert . . client "$cn"
cp ca-cert.pem other/
make_cert other . client intruder
cp server-cert.pem server-key.pem other/
make_ca rogue "rogue CA"
make_cert rogue rogue server ptrack-peer
make_cert rogue rogue client "$cn"
printf 'ptrack-test:%s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > psk.txt
printf 'ptrack-test:%s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > rogue/psk.txt
chmod 600 ./*-key.pem other/*-key.pem rogue/*-key.pem psk.txt rogue/psk.txt
