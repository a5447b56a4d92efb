#!/usr/bin/env bash
# The Linux `make run` job: start Berth's engine headless on a throwaway data
# root, build a busybox image locally (no network), run a web server in its
# own VM with a published port, fetch a page from it, show the container's
# logs, exec into it, stop it and shut the engine down. Everything is removed
# afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH=${BERTH:-build/berth}
PORT=${BERTH_DEMO_PORT:-8080}
[[ -x $BERTH ]] || { echo "demo: $BERTH missing: run make build" >&2; exit 1; }
BUSYBOX=$(command -v busybox || echo /bin/busybox)
if [[ ! -x $BUSYBOX ]] || [[ $(ldd "$BUSYBOX" 2>&1 || true) != *"not a dynamic"* ]]; then
  echo "demo: a static busybox is needed inside the container: install the Debian package busybox-static" >&2; exit 1
fi
command -v curl >/dev/null || { echo "demo: curl missing: install the Debian package curl" >&2; exit 1; }

DATA=$(mktemp -d /tmp/berth-demo.XXXXXX)
DAEMON=
cleanup() {
  if [[ -n $DAEMON ]] && kill -0 "$DAEMON" 2>/dev/null; then
    kill -TERM "$DAEMON"; wait "$DAEMON" || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT
b() { "$BERTH" --data-root "$DATA/root" "$@"; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building a busybox root filesystem and importing it as demo/busybox"
ROOTFS=$DATA/rootfs
mkdir -p "$ROOTFS"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www,proc,sys,dev}
chmod 1777 "$ROOTFS/tmp"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for a in $("$BUSYBOX" --list); do [[ $a == busybox ]] || ln -s busybox "$ROOTFS/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$ROOTFS/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$ROOTFS/etc/group"
cat > "$ROOTFS/var/www/index.html" <<'HTML'
<h1>Hello from a Berth container</h1>
<p>busybox httpd, in its own VM, reached through a published port.</p>
HTML
tar -C "$ROOTFS" -cf "$DATA/rootfs.tar" .
b import "$DATA/rootfs.tar" demo/busybox:latest

step "starting the engine: berth daemon (data root $DATA/root)"
"$BERTH" --data-root "$DATA/root" daemon --log-level warn &
DAEMON=$!
for _ in $(seq 100); do [[ -S $DATA/root/berth.sock ]] && break; sleep 0.1; done
[[ -S $DATA/root/berth.sock ]] || { echo "demo: the engine did not start" >&2; exit 1; }

step "berth run --rm demo/busybox uname -a   (a VM boots, runs one command, goes away)"
time b run --rm demo/busybox uname -a

step "berth run -d --name web -p 127.0.0.1:$PORT:80 demo/busybox httpd -f -v -p 80 -h /var/www"
b run -d --name web -p "127.0.0.1:$PORT:80" demo/busybox httpd -f -v -p 80 -h /var/www
b ps

step "curl http://127.0.0.1:$PORT/"
for i in $(seq 60); do
  if curl -fs "http://127.0.0.1:$PORT/"; then break; fi  # early tries: httpd may not listen yet
  [[ $i == 60 ]] && { echo "demo: no answer from the container" >&2; exit 1; }
  sleep 0.5
done

step "berth exec web sh -c 'hostname; ip -4 addr show eth0 | grep inet'"
b exec web sh -c 'hostname; ip -4 addr show eth0 | grep inet'
step "berth inspect web (its own IP address and the published port)"
b inspect web | grep -E '"IPAddress"|"HostPort"' | sort -u
step "berth logs web"
b logs web
step "berth stop web && berth rm web"
b stop web
b rm web
b ps -a

step "stopping the engine"
kill -TERM "$DAEMON"; wait "$DAEMON" || true
DAEMON=
echo "demo: done"
