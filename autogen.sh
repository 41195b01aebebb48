#!/bin/sh
# Generates ./configure from configure.ac (needs autoconf, automake, libtool).
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf --force --install
# The TAP driver `make check` uses ships with automake but is not always copied.
if [ ! -f build-aux/tap-driver.sh ]; then
	cp "$(ls -d /usr/share/automake-*/ | tail -n 1)tap-driver.sh" build-aux/
fi
