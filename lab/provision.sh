#!/usr/bin/env bash
# Build the lab's control-plane binaries (etcd, kube-apiserver) from Debian's packages and
# cache them.  There is no release download on these machines: kube-apiserver is compiled
# from Debian's `kubernetes` source package (1.20.2) with Debian's Go.
#
# Usage: lab/provision.sh [CACHE_DIR]   (default: ${XDG_CACHE_HOME:-~/.cache}/canary-istio-lab/bin)
set -euo pipefail

cache_dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/canary-istio-lab/bin}
work_dir=$(dirname "$cache_dir")/build
mkdir -p "$cache_dir" "$work_dir"

say() { printf '[lab provision] %s\n' "$*" >&2; }

# Prometheus for metric analysis: Debian's package (nothing starts by itself; the data plane runs
# it on loopback). Checked on every run, also when the binaries below are already cached.
if ! command -v prometheus >/dev/null; then
  say "installing prometheus (Debian's package)"
  as_root=(); [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || { "${as_root[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq \
         --no-install-recommends prometheus >/dev/null; }
fi

if [ -x "$cache_dir/etcd" ] && [ -x "$cache_dir/kube-apiserver" ] && [ -s "$cache_dir/kube-apiserver" ]; then
  say "binaries already cached in $cache_dir"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { say "need root (or sudo) to install Debian packages"; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

# 1. deb-src entry for bookworm main, mirroring the existing deb entry's URI.
src_list=/etc/apt/sources.list.d/canary-istio-lab-src.sources
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  uri=${uri:-http://deb.debian.org/debian}
  say "adding deb-src entry ($uri bookworm main)"
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    | "${sudo_cmd[@]}" tee "$src_list" >/dev/null
fi

say "apt-get update"
"${sudo_cmd[@]}" apt-get update -qq
say "installing golang-go rsync etcd-server golang-github-modern-go-reflect2-dev dpkg-dev"
"${sudo_cmd[@]}" apt-get install -y -qq golang-go rsync etcd-server golang-github-modern-go-reflect2-dev dpkg-dev >/dev/null

# 2. etcd from Debian's etcd-server package.
install -m 0755 "$(command -v etcd || echo /usr/bin/etcd)" "$cache_dir/etcd"

# 3. kubernetes source.
cd "$work_dir"
src=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
if [ -z "$src" ]; then
  say "apt-get source kubernetes (about 34 MB)"
  apt-get source -qq kubernetes >/dev/null 2>&1 || apt-get source kubernetes
  src=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
fi
cd "$src"

# 4. Crash fix: vendored reflect2 v1.0.1 faults under Go >= 1.18; use Debian's v1.0.2.
say "replacing vendored modern-go/reflect2 with Debian's v1.0.2 (Go >= 1.18 crash fix)"
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2

# 5. Build in GOPATH mode, as debian/rules does.
mkdir -p .go/src/k8s.io
[ -e .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
if [ ! -s _output/bin/kube-apiserver ]; then
  rm -rf _output
  say "building kube-apiserver (about 5 minutes on 2 cores)"
  GOPATH=$PWD/.go GO111MODULE=off GOFLAGS= CGO_ENABLED=0 make WHAT=cmd/kube-apiserver
fi
[ -s _output/bin/kube-apiserver ] || { say "build produced no kube-apiserver binary"; rm -rf _output; exit 1; }
install -m 0755 _output/bin/kube-apiserver "$cache_dir/kube-apiserver"
say "cached etcd and kube-apiserver in $cache_dir"
