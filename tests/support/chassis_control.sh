#!/bin/sh
# Power model for ipmi_sim's `chassis_control "<this script> STATE_DIR"`.
#
# ipmi_sim runs this synchronously through popen(), as
#   chassis_control.sh STATE_DIR get power        -> prints "power:0" or "power:1"
#   chassis_control.sh STATE_DIR set power 0|1
#   chassis_control.sh STATE_DIR set reset 1
# and the BMC is unresponsive until we exit, so every wait here is bounded.
#
# The "server" is a real process (a detached `sleep`) so tests can check what
# a fence really did to it.  STATE_DIR/server.pid holds "PID STARTTIME"; the
# start time (field 22 of /proc/PID/stat) guards against PID reuse.  The server
# only starts if it could record itself, so a harness that removed STATE_DIR
# while a request was in flight does not leak it.
# STATE_DIR/behaviour may contain "ignore-power-off": the BMC then acknowledges
# power off and reset but leaves the server running (a broken BMC); or
# "power-off-then-error": power off kills the server and then this script exits
# non-zero, which ipmi_sim answers with completion code 0xFF (unspecified error):
# the BMC that cut the power and still reported an error (seen in the lab).
# An executable STATE_DIR/power-on is what powering on starts instead of the `sleep`
# (a lab guest's QEMU: the node boots again), exec'd so the recorded PID is its own.

set -u

dir=${1:?usage: chassis_control.sh STATE_DIR get|set ...}
shift
pidfile=$dir/server.pid

# Succeeds when the recorded server is running.  A zombie counts as dead: in a
# container nothing may ever reap it, yet for the "server" it is powered off.
server_alive() {
    [ -r "$pidfile" ] || return 1
    read -r pid start <"$pidfile" || return 1
    [ -n "${pid:-}" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    rest=${stat##*) }
    # shellcheck disable=SC2086
    set -- $rest
    state=$1
    shift 19
    [ "$1" = "$start" ] || return 1
    case $state in Z|X|x) return 1 ;; esac
    return 0
}

start_server() {
    server_alive && return 0
    rm -f "$pidfile" "$pidfile.new"
    # setsid: own session, so signals aimed at the test's process group miss it.
    # All fds redirected: ipmi_sim's popen() waits for EOF on our stdout, so an
    # inherited pipe would hang the BMC.  The child writes its own PID because
    # setsid(1) may fork.  The sleep is finite so a leaked server (test binary
    # SIGKILLed before Drop ran) cleans itself up eventually.
    setsid sh -c '
        stat=$(cat /proc/$$/stat); rest=${stat##*) }; set -- $rest; shift 19
        echo "$$ $1" >"$0.new" && mv "$0.new" "$0" || exit 1
        [ -x "${0%/*}/power-on" ] && exec "${0%/*}/power-on"
        exec sleep 3600
        ' "$pidfile" </dev/null >/dev/null 2>&1 &
    i=0
    while [ $i -lt 500 ]; do
        server_alive && return 0
        sleep 0.01
        i=$((i + 1))
    done
    echo "chassis_control: server did not start" >&2
    return 1
}

stop_server() {
    if [ -r "$dir/behaviour" ] && grep -qx 'ignore-power-off' "$dir/behaviour"; then
        return 0
    fi
    server_alive || { rm -f "$pidfile"; return 0; }
    read -r pid start <"$pidfile"
    kill -KILL "$pid" 2>/dev/null
    i=0
    while server_alive; do
        i=$((i + 1))
        if [ $i -ge 500 ]; then
            echo "chassis_control: server $pid did not die" >&2
            return 1
        fi
        sleep 0.01
    done
    rm -f "$pidfile"
}

case "$*" in
    "get power")
        if server_alive; then echo "power:1"; else echo "power:0"; fi ;;
    "set power 1") start_server ;;
    "set power 0")
        stop_server || exit 1
        if [ -r "$dir/behaviour" ] && grep -qx 'power-off-then-error' "$dir/behaviour"; then
            echo "chassis_control: power is off, reporting an error anyway" >&2
            exit 1
        fi ;;
    "set reset 1")
        if [ -r "$dir/behaviour" ] && grep -qx 'ignore-power-off' "$dir/behaviour"; then
            exit 0
        fi
        stop_server && start_server ;;
    get\ *)
        # Other values (boot device, identify) are not modelled; printing
        # nothing makes ipmi_sim report an error for that value only.
        : ;;
    *)
        echo "chassis_control: unsupported request: $*" >&2
        exit 1 ;;
esac
