#!/bin/sh
# sensu-tlsd preremove, for dpkg (remove | upgrade NEW | ...) and rpm (0
# erase, 1 upgrade): the daemon stops only when the package goes away, not
# on an upgrade (postinstall restarts it then if it was running).
set -e
case "$1" in
	remove | 0)
		if [ -d /run/systemd/system ]; then
			systemctl stop sensu-tlsd.service || true
		fi
		;;
esac
exit 0
