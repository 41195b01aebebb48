#!/bin/sh
# embed-schema.sh - compiles schema/NNN_name.sql migrations into a C source file.
#
# Usage: sh build-aux/embed-schema.sh OUT.c schema/001_users.sql schema/002_x.sql ...
#
# Writes OUT.c defining schema_migrations[] (see src/schema.h): the version and name
# come from each file name, the SQL from its content as a C string literal. The
# files must be given in ascending version order, so a misnumbered migration fails
# the build instead of running out of order. POSIX sh and awk only, so it runs on
# any build host without extra tools.

set -u

if [ $# -lt 2 ]; then
	echo "usage: $0 OUT.c NNN_name.sql..." >&2
	exit 2
fi
out=$1
shift

fail() {
	echo "embed-schema.sh: $*" >&2
	rm -f "$out"
	exit 1
}

# One awk run per file: escapes what C would otherwise read as syntax. "?" is
# escaped too because -std=c11 turns "??x" sequences into trigraphs.
escape='
{
	sub(/\r$/, "")
	s = ""
	n = length($0)
	for (i = 1; i <= n; i++) {
		c = substr($0, i, 1)
		if (c == "\\")
			s = s "\\\\"
		else if (c == "\"")
			s = s "\\\""
		else if (c == "?")
			s = s "\\?"
		else if (c == "\t")
			s = s "\\t"
		else
			s = s c
	}
	printf "\t  \"%s\\n\"\n", s
}'

{
	echo "/* Generated from schema/ by build-aux/embed-schema.sh: do not edit. */"
	echo '#include "schema.h"'
	echo
	echo "const struct schema_migration schema_migrations[] = {"
} >"$out" || fail "cannot write $out"

prev=0
count=0
for f in "$@"; do
	base=${f##*/}
	case $base in
	[0-9][0-9][0-9]_*.sql) ;;
	*) fail "$f: the name must be NNN_name.sql" ;;
	esac
	name=${base#???_}
	name=${name%.sql}
	case $name in
	'' | *[!a-z0-9_]*) fail "$f: the name part must be [a-z0-9_]+" ;;
	esac
	# Leading zeros would make the number octal in C: strip them (at most two).
	version=${base%%_*}
	case $version in
	00?) version=${version#00} ;;
	0??) version=${version#0} ;;
	esac
	[ "$version" -gt 0 ] || fail "$f: versions start at 001"
	[ "$version" -gt "$prev" ] || fail "$f: version $version does not follow $prev"
	[ -r "$f" ] || fail "$f: cannot read it"
	printf '\t{ %s, "%s",\n' "$version" "$name" >>"$out" || fail "cannot write $out"
	awk "$escape" "$f" >>"$out" || fail "$f: awk failed"
	printf '\t  "" },\n' >>"$out" || fail "cannot write $out"
	prev=$version
	count=$((count + 1))
done

{
	echo "};"
	echo
	echo "const unsigned schema_nmigrations = $count;"
} >>"$out" || fail "cannot write $out"
exit 0
