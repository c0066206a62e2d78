# tests/box/lib/scenario.sh — helpers shared by the box scenarios (sourced as
# /ebb/lib/scenario.sh; contract in docs/box.md).  Each VM started with
# start() writes its console to LOG (every line prefixed with the box uptime
# at which it arrived, "ebb-exit: STATUS" last) and ebb's stderr to LOG.err.

export EBB_RUNTIME_DIR=$PWD/rt
fail=0

now() { cut -d' ' -f1 /proc/uptime; }
b64() { base64 | tr -d '\n'; }

# check EXIT-STATUS MESSAGE: one TAP line; a failure sets fail=1.
check() {
	if [ "$1" -eq 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fail=1; fi
}

# start NAME LOG SCRIPT OPTS...: ebb run (1 vCPU unless OPTS say otherwise)
# in the background, the guest running SCRIPT (ebb.cmd).  Console input from
# /dev/null, or from fd 3 (a fifo at LOG.in) with START_INPUT=fifo; the agent
# is off (ebb.agent=0) unless START_AGENT=1; START_CMDLINE adds kernel
# parameters.
start() {
	name=$1 log=$2 script=$3
	shift 3
	agent="ebb.agent=0 "
	[ "${START_AGENT:-0}" = 1 ] && agent=
	if [ "${START_INPUT:-}" = fifo ]; then
		rm -f "$log.in"
		mkfifo "$log.in"
		exec 3<>"$log.in"
		( start_ebb "$@" <&3 2>"$log.err"; echo "ebb-exit: $?" ) | stamp >"$log" &
	else
		( start_ebb "$@" </dev/null 2>"$log.err"; echo "ebb-exit: $?" ) | stamp >"$log" &
	fi
}
start_ebb() {
	"$EBB" run --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" --cpus 1 --name "$name" "$@" \
		--cmdline "quiet ${agent}${START_CMDLINE:+$START_CMDLINE }ebb.cmd=$(printf '%s\n' "$script" | b64)"
}
# stamp: console lines without CR, each prefixed with the box uptime.
stamp() { tr -d '\r' | while IFS= read -r l; do echo "$(now) $l"; done; }

# wait_for FILE PATTERN SECONDS: until a line of FILE matches (1 = timed out).
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -gt $(($3 * 5)) ] && return 1
		sleep 0.2
	done
}

# dump LOG: the end of a VM's console and of ebb's stderr, as '#' lines.
dump() {
	sed 's/^/# console| /' "$1" | tail -n 40
	sed 's/^/# stderr| /' "$1.err" 2>/dev/null | tail -n 20
}

# field JSON-FILE KEY: the first integer value of KEY.
field() { sed -n "s/.*\"$2\": *\([0-9-]*\).*/\1/p" "$1" | head -n 1; }
