# tests/integration/lib/tap.sh — TAP for the integration scripts (sourced):
# ok STATUS DESCRIPTION prints "ok N - ..." when STATUS is 0, else
# "not ok N - ..." and sets failed=1; exit with $failed at the end.
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
