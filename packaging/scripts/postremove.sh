#!/bin/sh
# sensu-tlsd postremove, for dpkg (remove | purge | upgrade ...) and rpm (0
# erase, 1 upgrade). systemd forgets the unit. A purge keeps the state
# directory: it holds the local CA's key and the certificates Sensu uses,
# which no package operation should destroy. The user and group stay, as
# Debian does with system users (files may still belong to them).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ] && [ -d /var/lib/sensu-tlsd ]; then
	echo "sensu-tlsd purged: /var/lib/sensu-tlsd (local CA, certificates) is kept; remove it by hand if nothing uses them."
fi
exit 0
