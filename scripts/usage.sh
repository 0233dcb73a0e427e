# usage.sh -- sourced by the shell scripts here: a script's --help is its
# header comment, and a script that takes no arguments says so.

# The comment block at the top of the sourcing script, less its "#!".
usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; }

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
