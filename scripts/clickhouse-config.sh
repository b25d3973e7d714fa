#!/usr/bin/env bash
# Write DIR/config.xml and DIR/users.xml for a private ClickHouse instance.
#
# Usage: scripts/clickhouse-config.sh DIR HTTP_PORT TCP_PORT INTERSERVER_PORT
#
# The files are derived from the packaged /etc/clickhouse-server/{config,users}.xml
# (override with CLICKHOUSE_TEMPLATE_DIR): every /var/lib/clickhouse and
# /var/log/clickhouse-server path is moved under DIR, the three ports are set,
# the server listens on 127.0.0.1 only (no IPv6 needed) and logs little.
# Nothing is started: run `clickhouse-server --config-file=DIR/config.xml`.
#
# The Rust integration tests call this script, so it prints nothing on
# success; errors go to stderr with a non-zero exit.
set -euo pipefail

die() {
    echo "clickhouse-config: $*" >&2
    exit 1
}

[[ $# -eq 4 ]] || die "usage: $0 DIR HTTP_PORT TCP_PORT INTERSERVER_PORT"

dir=$1
http_port=$2
tcp_port=$3
interserver_port=$4
template_dir=${CLICKHOUSE_TEMPLATE_DIR:-/etc/clickhouse-server}

for p in "$http_port" "$tcp_port" "$interserver_port"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
        die "invalid port '$p' (want 1-65535)"
    fi
done
if [[ $http_port == "$tcp_port" || $http_port == "$interserver_port" || $tcp_port == "$interserver_port" ]]; then
    die "ports must differ (http $http_port, tcp $tcp_port, interserver $interserver_port)"
fi
[[ -n $dir ]] || die "DIR is empty"
# DIR ends up inside XML text and a sed replacement: refuse what would need escaping.
[[ $dir != *[\&\<\>\|\\]* ]] || die "DIR '$dir' must not contain & < > | or backslash"
for f in config.xml users.xml; do
    [[ -r $template_dir/$f ]] || die "$template_dir/$f not found (is clickhouse-server installed? try scripts/services.sh install)"
done

mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd) # the server resolves relative paths against its cwd, so make them absolute

mkdir -p "$dir/data/tmp" "$dir/data/user_files" "$dir/data/format_schemas" "$dir/log" ||
    die "cannot create directories under $dir"

# The edits, line by line (the packaged config keeps one element per line):
# - paths: /var/lib/clickhouse -> DIR/data, /var/log/clickhouse-server -> DIR/log;
# - ports: http, tcp and interserver set; ports that a newer package may enable
#   by default (mysql, postgresql, https, secure tcp) dropped, so that several
#   instances can run side by side;
# - listen_host: every one dropped (including `::` and `::1`, which fail where
#   IPv6 is off), then a single 127.0.0.1 added after the root element;
# - logger: rotate at 10M with 1 old file, level warning;
# - caches: the packaged 8 GiB / 5 GiB caches lowered, tests start several
#   servers at once;
# - timezone: UTC, so that toDate/toStartOfHour do not depend on the machine.
sed -E \
    -e "s|/var/lib/clickhouse/?|$dir/data/|g" \
    -e "s|/var/log/clickhouse-server/?|$dir/log/|g" \
    -e "s|<http_port>[0-9]+</http_port>|<http_port>$http_port</http_port>|" \
    -e "s|<tcp_port>[0-9]+</tcp_port>|<tcp_port>$tcp_port</tcp_port>|" \
    -e "s|<interserver_http_port>[0-9]+</interserver_http_port>|<interserver_http_port>$interserver_port</interserver_http_port>|" \
    -e '/<(mysql_port|postgresql_port|https_port|tcp_port_secure|interserver_https_port|grpc_port)>/d' \
    -e '/<listen_host>/d' \
    -e 's|<level>[a-z]+</level>|<level>warning</level>|' \
    -e 's|<size>[0-9]+M</size>|<size>10M</size>|' \
    -e 's|<count>[0-9]+</count>|<count>1</count>|' \
    -e 's|<uncompressed_cache_size>[0-9]+</uncompressed_cache_size>|<uncompressed_cache_size>268435456</uncompressed_cache_size>|' \
    -e 's|<mark_cache_size>[0-9]+</mark_cache_size>|<mark_cache_size>268435456</mark_cache_size>|' \
    -e '/<timezone>/d' \
    -e 's#^(<(yandex|clickhouse)>)[[:space:]]*$#\1\n    <listen_host>127.0.0.1</listen_host>\n    <timezone>UTC</timezone>#' \
    "$template_dir/config.xml" >"$dir/config.xml.tmp" || die "cannot write $dir/config.xml"

# Fail loudly if the template did not have the shape the edits assume, rather
# than start a server on the default ports or in /var/lib/clickhouse.
check() {
    grep -q -- "$1" "$dir/config.xml.tmp" || die "template $template_dir/config.xml: could not set $2"
}
check "<http_port>$http_port</http_port>" "http_port"
check "<tcp_port>$tcp_port</tcp_port>" "tcp_port"
check "<interserver_http_port>$interserver_port</interserver_http_port>" "interserver_http_port"
check "<listen_host>127.0.0.1</listen_host>" "listen_host (root element not found)"
check "<path>$dir/data/</path>" "path"
if grep -q -e '/var/lib/clickhouse' -e '/var/log/clickhouse-server' "$dir/config.xml.tmp"; then
    die "template $template_dir/config.xml: a /var path was left unrewritten"
fi
mv "$dir/config.xml.tmp" "$dir/config.xml"

# users.xml: the packaged one (default user, no password) is what tests want;
# only rewrite paths in case a newer package mentions any.
sed -E \
    -e "s|/var/lib/clickhouse/?|$dir/data/|g" \
    -e "s|/var/log/clickhouse-server/?|$dir/log/|g" \
    "$template_dir/users.xml" >"$dir/users.xml" || die "cannot write $dir/users.xml"
