#!/usr/bin/env bash
# A real S3-compatible object store on one machine, offline: Ceph's RADOS Gateway (radosgw, the
# S3 API that production Ceph clusters serve) over a one-monitor, one-OSD Ceph cluster whose OSD
# keeps objects in memory (memstore). Debian 12 packages only; about 15 s to start; ~600 MB RSS.
# Verified here: multipart upload, ranged GET, ListObjectsV2, conditional PUT (If-None-Match: *
# answers 412 when the key exists) with @aws-sdk/client-s3 (forcePathStyle: true, region any).
#
# Usage (as root):
#   ceph-rgw.sh start DIR [PORT]   start (or reuse) a cluster in DIR, S3 on 127.0.0.1:PORT (7480);
#                                  prints: endpoint, access key, secret key
#   ceph-rgw.sh stop DIR           stop its daemons and remove DIR
#   ceph-rgw.sh rgw-down DIR / rgw-up DIR PORT   stop / restart only the gateway
# MONPORT (default PORT - 691) is the monitor's port; RGW_DNS_NAME (optional) lets radosgw take
# virtual-hosted requests (Host: <bucket>.<RGW_DNS_NAME>). From /work/shared/s3-ceph-rgw.sh;
# test/support/ceph-rgw.ts drives it.
set -euo pipefail
cmd=${1:?start|stop}; DIR=${2:?state folder}; PORT=${3:-7480}
MONPORT=${MONPORT:-$((PORT - 7480 + 6789))}
ACCESS=mirrorkit; SECRET=mirrorkit-secret-key

stop() {
  for p in "$DIR"/run/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
  # A gateway restarted by rgw-up may not be in its pid file: this cluster's processes by its own config path.
  pkill -f -- "-c $DIR/ceph.conf" 2>/dev/null || true
  for _ in $(seq 50); do pgrep -f -- "-c $DIR/ceph.conf" >/dev/null || break; sleep 0.2; done
  rm -rf "$DIR"
}

start() {
  if [ -f "$DIR/ready" ] && curl -sf "http://127.0.0.1:$PORT/" >/dev/null; then
    echo "http://127.0.0.1:$PORT $ACCESS $SECRET"; return 0
  fi
  if ! command -v radosgw >/dev/null || ! command -v ceph-osd >/dev/null; then
    # Packages must not start services of their own.
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ceph-mon ceph-osd radosgw ceph-common </dev/null >/dev/null
  fi
  rm -rf "$DIR"; mkdir -p "$DIR"/{mon,osd0,rgw,run,log}
  local fsid conf=$DIR/ceph.conf
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat > "$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$MONPORT
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = $DIR/run
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
public addr = 127.0.0.1
ms bind ipv6 = false
osd objectstore = memstore
memstore device bytes = 4294967296
osd data = $DIR/osd\$id
osd class update on start = false
osd crush update on start = false
mon data = $DIR/mon
keyring = $DIR/keyring
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $DIR/rgw
${RGW_DNS_NAME:+rgw dns name = $RGW_DNS_NAME}
EOF
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --add a "v1:127.0.0.1:$MONPORT" --fsid "$fsid" "$DIR/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
  ceph-mon -c "$conf" -i a
  local uuid id
  uuid=$(cat /proc/sys/kernel/random/uuid)
  # A monitor still forming its quorum on a loaded machine answers EPERM for a moment; `osd new`
  # with the same uuid is idempotent, so asking again is safe.
  for _ in $(seq 20); do id=$(timeout 30 ceph -c "$conf" osd new "$uuid" 2>/dev/null) && break; sleep 1; done
  [ -n "${id:-}" ] || { echo "the Ceph monitor never accepted osd new; see $DIR/log" >&2; exit 1; }
  ceph-osd -c "$conf" -i "$id" --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
  ceph-osd -c "$conf" -i "$id" >/dev/null 2>&1
  timeout 30 ceph -c "$conf" osd crush add "osd.$id" 1.0 host=localhost root=default >/dev/null 2>&1
  radosgw -c "$conf" -n client.rgw.a >/dev/null 2>&1
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.5; done
  curl -sf "http://127.0.0.1:$PORT/" >/dev/null || { echo "radosgw did not answer on $PORT; see $DIR/log" >&2; exit 1; }
  timeout 60 radosgw-admin -c "$conf" user create --uid=mirrorkit --display-name=mirrorkit \
    --access-key="$ACCESS" --secret="$SECRET" >/dev/null 2>&1
  touch "$DIR/ready"
  echo "http://127.0.0.1:$PORT $ACCESS $SECRET"
}

# Only the gateway, for outage tests: the cluster behind it keeps the objects.
rgw_down() {
  local pid; pid=$(cat "$DIR/run/client.rgw.a.pid")
  kill "$pid"; for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}
rgw_up() {
  radosgw -c "$DIR/ceph.conf" -n client.rgw.a >/dev/null 2>&1
  for _ in $(seq 120); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && return 0; sleep 0.5; done
  echo "radosgw did not answer on $PORT; see $DIR/log" >&2; exit 1
}

case "$cmd" in
  start) start;;
  stop) stop;;
  rgw-down) rgw_down;;
  rgw-up) rgw_up;;
  *) echo "usage: $0 start|stop|rgw-down|rgw-up DIR [PORT]" >&2; exit 2;;
esac
