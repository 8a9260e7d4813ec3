#!/bin/sh
# sensu-tlsd postinstall, for dpkg (configure [OLD-VERSION]) and rpm (1
# install, 2 upgrade). Like Sensu's own packages it enables and starts
# nothing; an upgrade restarts the daemon only when it is running.
set -e

upgrade=false
case "$1" in
	configure) [ -n "$2" ] && upgrade=true ;;
	2) upgrade=true ;;
	1) ;;
	*) exit 0 ;; # abort-upgrade, abort-remove, ...: nothing to do
esac

# The sensu group (Sensu's packages create it too) owns shared key files;
# the sensu-tlsd user is for the documented non-root drop-in.
if ! getent group sensu >/dev/null; then
	groupadd --system sensu
fi
if ! getent passwd sensu-tlsd >/dev/null; then
	useradd --system --gid sensu --home-dir /var/lib/sensu-tlsd --no-create-home \
		--shell /usr/sbin/nologin --comment "sensu-tlsd" sensu-tlsd
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if $upgrade; then
		systemctl try-restart sensu-tlsd.service || true
	fi
fi
if ! $upgrade; then
	echo "sensu-tlsd installed: edit /etc/sensu/tlsd.yml, check it with 'sensu-tlsd config validate', then 'systemctl enable --now sensu-tlsd'."
fi
exit 0
