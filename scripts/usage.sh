# usage.sh -- sourced by the shell scripts here: a script's --help is its
# header comment, and a script that takes no arguments says so; and
# kill_children, for their EXIT traps.

# The comment block at the top of the sourcing script, less its "#!". A
# script that has done `cd` to the repository root since it was started by
# a relative path (dir/scripts/x.sh) is scripts/x.sh from here.
usage() {
  local f=$0
  [ -r "$f" ] || f=scripts/$(basename "$0")
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$f"
}

# For a script that takes no arguments but -h/--help: print the help and
# exit 0, or refuse anything else with exit 2.
only_help() {
  local arg name
  name=$(basename "$0")
  for arg in "$@"; do
    case $arg in
      -h | --help) usage; exit 0 ;;
      *) echo "$name: unknown argument '$arg' (scripts/$name --help)" >&2; exit 2 ;;
    esac
  done
}

# Stop every process still running below this shell (children, and theirs).
# For an EXIT trap: on SIGTERM or SIGHUP bash runs the trap and exits but
# leaves its foreground command (a build, a benchmark, a fuzzer) running;
# Ctrl-C reaches them through the terminal, a `kill PID` of the script does
# not. Walks /proc/PID/task/*/children with builtins only: a command
# substitution would fork a child of its own into the walk.
kill_children() {
  local p=${1:-$$} f k kids=() more=()
  for f in /proc/"$p"/task/*/children; do
    more=()
    read -r -a more 2>/dev/null <"$f" || true
    kids+=("${more[@]}")
  done
  for k in "${kids[@]}"; do kill_children "$k"; done
  [ ${#kids[@]} -eq 0 ] || kill -TERM "${kids[@]}" 2>/dev/null || true
}
