#!/usr/bin/env bash
# contrib/bench/s2s_compare.sh - the throughput and CPU cost of one federation (s2s)
# link: for each server kind, two instances A and B (domains sa-KIND.test and
# sb-KIND.test) on their own loopback addresses, federated over STARTTLS with
# certificates from a test CA and a private DNS server (the harness of the s2s tests,
# tests/integration/s2s_lib.sh); N/2 senders log in on A and N/2 receivers on B, and
# parley-bench's chat scenario sends at each rate of --rates from random senders to
# random receivers, so that every message crosses A -> B. Figures per step:
# delivered/s, latency p99, and server CPU seconds per 100k messages summed over both
# servers' processes (--pid A,B).
#
# Usage (as root, from a built tree: contrib/bench/parley-bench must exist):
#
#   contrib/bench/s2s_compare.sh [options] [-- BENCH-OPTIONS]
#
#   --servers LIST       parley, prosody, ejabberd, in that order by default
#   -n N                 accounts: N/2 on each server (default 200)
#   --rates R1,R2,...    msgs/s (default 1000,2000,5000)
#   --step-seconds S     seconds per step (default 4)
#   -o FILE              raw results, one JSON object per run (default
#                        /tmp/s2s-compare-DATE.jsonl; the table: the same name, .md)
#   --keep               keep the temp dir (configs, logs)
#
# Accounts are made by in-band registration (XEP-0077) through the bench (Parley's
# mod_register, Prosody's mod_register, ejabberd's mod_register), then the chat run
# follows on the same server processes. Parley's two instances get databases on a
# private PostgreSQL (as in contrib/test.sh), removed at the end, unless
# PARLEY_TEST_PG_BASE names one. Logging is at warn. Everything is on 127.0.0.x, bounded by
# timeout, and stopped at the end. No timing is asserted: figures only.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2

SERVERS=parley,prosody,ejabberd N=200 RATES=1000,2000,5000 STEP=4 OUT='' KEEP=0 EXTRA=()
while [ $# -gt 0 ]; do
	case $1 in
	--servers) SERVERS=${2:-}; shift 2 || break;;
	-n) N=${2:-}; shift 2 || break;;
	--rates) RATES=${2:-}; shift 2 || break;;
	--step-seconds) STEP=${2:-}; shift 2 || break;;
	-o) OUT=${2:-}; shift 2 || break;;
	--keep) KEEP=1; shift;;
	--) shift; EXTRA=("$@"); break;;
	-h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
		exit 0;;
	*) echo "s2s_compare.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
	esac
done
if ! [[ $N =~ ^[0-9]+$ ]] || [ "$N" -lt 2 ]; then
	echo "s2s_compare.sh: -n wants 2 or more" >&2; exit 2
fi
[[ $RATES =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "s2s_compare.sh: bad --rates" >&2; exit 2; }
[[ $STEP =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "s2s_compare.sh: bad --step-seconds" >&2; exit 2; }
IFS=, read -r -a LIST <<<"$SERVERS"
for s in "${LIST[@]}"; do
	case $s in parley|prosody|ejabberd) ;; *) echo "s2s_compare.sh: unknown server '$s'" >&2
		exit 2;; esac
done
[ "$(id -u)" -eq 0 ] || { echo "s2s_compare.sh: run as root (servers run as their users)" >&2
	exit 2; }
for f in contrib/bench/parley-bench src/parleyd src/parleyctl; do
	[ -x "$f" ] || { echo "s2s_compare.sh: build first (make): no $f" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The harness of the s2s tests; its bail ends the script.
top_srcdir=. PARLEY_TEST_KEEP=$KEEP PARLEY_BUILDDIR=$PWD	# absolute: configs name it
# shellcheck source=tests/integration/lib.sh
. tests/integration/lib.sh
# shellcheck source=tests/integration/s2s_lib.sh
. tests/integration/s2s_lib.sh
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
# Loud only where the servers must be told: registration open, nothing throttled.
S2S_USERS='' S2S_LOG_LEVEL=warn
S2S_PROSODY_MODULES='"register";'
S2S_PROSODY_CFG='allow_registration = true
min_seconds_between_registrations = 0'
S2S_EJABBERD_YML='registration_timeout: infinity'
S2S_EJABBERD_MODULES='  mod_register:
    access: register
    ip_access: all'
S2S_PARLEY_MODULES='<module name="register" allow-registration="true" rate="100000"/>'
s2s_init s2s-bench
PGT=''
if [[ ,$SERVERS, == *,parley,* ]] && [ -z "${PARLEY_TEST_PG_BASE:-}" ]; then
	# shellcheck source=contrib/lib.sh
	. contrib/lib.sh
	PGT=$(mktemp -d /tmp/parley-s2s-bench-pg.XXXXXX) && chmod 755 "$PGT" ||
		bail "mktemp failed"
	PG_FSYNC=off pg_start "$PGT/pg" >&2
	PARLEY_TEST_PG_BASE=$PG_CONNINFO_BASE
	trap 's2s_cleanup; pg_stop; rm -rf "$PGT"' EXIT
fi
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-/tmp/s2s-compare-$STAMP.jsonl}
: >"$OUT" || { echo "s2s_compare.sh: cannot write $OUT" >&2; exit 2; }
doms=()
for s in "${LIST[@]}"; do doms+=("sa-$s.test" "sb-$s.test"); done
s2s_ca "${doms[@]}"
s2s_dns

nsteps=$(tr ',' '\n' <<<"$RATES" | wc -l)
BT=$((N / 50 + nsteps * (${STEP%.*} + 3) + 60))
ip=30
for s in "${LIST[@]}"; do
	a=a_$s b=b_$s
	"s2s_$s" "$a" "sa-$s.test" "127.0.0.$ip" secure
	"s2s_$s" "$b" "sb-$s.test" "127.0.0.$((ip + 1))" secure
	ip=$((ip + 2))
	s2s_wait "$a" "$b"
	pids=()
	for x in "$a" "$b"; do
		if [ -n "${S2S_PIDFILE[$x]}" ]; then pids+=("$(tr -dc 0-9 <"${S2S_PIDFILE[$x]}")")
		else pids+=("${S2S_PID[$x]}"); fi
	done
	if [ "$s" = parley ]; then ver="parley $(src/parleyd --version | awk '{ print $2 }')"
	else ver="$s $(dpkg-query -W -f='${Version}' "$s")"; fi
	common=(-a "${S2S_IP[$a]}" -p "${S2S_C2S[$a]}" -h "${S2S_DOMAIN[$a]}"
		--server2 "${S2S_IP[$b]}:${S2S_C2S[$b]}" --host2 "${S2S_DOMAIN[$b]}"
		--tls none -n "$N" --scram-cache "$T/scram-$s.cache")
	say "$s: $N accounts (in-band registration), $ver"
	timeout -k 5 $((N / 5 + 120)) contrib/bench/parley-bench "${common[@]}" -s login \
		--login-rate 200 --ibr --timeout $((N / 5 + 90)) >"$T/setup-$s.json" \
		2>"$T/setup-$s.err"
	say "$s: chat A -> B at $RATES msgs/s, $STEP s a step (pids ${pids[*]})"
	timeout -k 5 $((BT + 30)) contrib/bench/parley-bench "${common[@]}" -s chat \
		--no-register --pid "$(IFS=,; echo "${pids[*]}")" --rates "$RATES" \
		--step-seconds "$STEP" --timeout "$BT" "${EXTRA[@]}" >"$T/run-$s.json" \
		2>"$T/run-$s.err"
	python3 - "$T/run-$s.json" "$s" "$ver" "$T/setup-$s.json" <<'PY' >>"$OUT"
import json, sys
def load(p):
    t = open(p).read()
    for cand in [t] + t.splitlines()[::-1]:
        try:
            d = json.loads(cand)
            if isinstance(d, dict):
                return d
        except ValueError:
            pass
    return {"ok": False, "error": "no JSON from parley-bench"}
d = load(sys.argv[1])
setup = load(sys.argv[4])
e = {"server": sys.argv[2], "version": sys.argv[3], "compare_scenario": "s2s-chat",
     "setup_logins_ok": setup.get("logins_ok"), "setup_error": setup.get("error")}
e.update(d)
print(json.dumps(e))
PY
	grep -Eq '"ok": ?true' "$T/run-$s.json" ||
		{ say "$s: the run failed:"; tail -n 5 "$T/run-$s.err" >&2; }
	s2s_stop "$a" "$b"
done

TABLE=${OUT%.jsonl}.md
python3 - "$OUT" "$N" <<'PY' | tee "$TABLE"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("s2s chat, n=%s (%d senders on A, %d receivers on B), one run each"
      % (sys.argv[2], int(sys.argv[2]) - int(sys.argv[2]) // 2, int(sys.argv[2]) // 2))
print("servers: " + "; ".join(r["version"] for r in rows))
print()
print("| server | rate msgs/s | delivered/s | p99 ms | CPU s/100k msgs (A+B) | bench CPU share |")
print("| --- | --- | --- | --- | --- | --- |")
def f(x, d=2):
    return "-" if x is None else ("%.*f" % (d, x))
for r in rows:
    if not r.get("steps"):
        print("| %s | - | - | - | - | - | (%s)" % (r["server"], r.get("error", "no steps")))
    for s in r.get("steps", []):
        flag = "" if s.get("rate_reached", True) and not s.get("bench_bottleneck") else " !"
        flag += " ~" if s.get("fell_behind") else ""
        print("| %s | %s | %s | %s | %s | %s |%s" % (
            r["server"], format(s["rate"], ","), f(s.get("delivered_per_s"), 0),
            f(s["latency_us_p99"] / 1000.0 if s.get("latency_us_p99") is not None else None),
            f(s.get("server_cpu_s_per_100k")), f(s.get("bench_cpu_share")), flag))
    if r.get("ok"):
        print("| %s | lost %s, duplicates %s, misrouted %s | | | | |"
              % (r["server"], r.get("lost"), r.get("duplicates"), r.get("misrouted")))
print()
print("!: the bench was the bottleneck or could not reach the rate; ~: the servers fell "
      "behind (delivered < 95% or p99 > 1 s).")
PY
say "raw results: $OUT, table: $TABLE"
