# Sourced by tools/kiosk-rate.sh and tools/kiosk-latency.sh: the binary and config from their
# arguments ([EDGEID_BINARY] [CONFIG]), a temporary folder removed at exit, and
#   kiosk_config LIST OUT [SED]   the config replaying LIST, with its journal and gallery in the
#                                 temporary folder, the repo's models, no HTTP endpoint, then SED
#                                 and $EDITS applied, written to OUT with "kiosk" enrolled.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/target/release/edgeid}
config=${2:-$root/configs/default.toml}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kiosk_config() {
    sed -e "s#path = \"../tests/data/replay.txt\"#path = \"$1\"#" \
        -e "s#\.\./var/#$tmp/#g" -e "s#\.\./models/#$root/models/#g" -e 's#^http = .*#http = ""#' \
        -e "${3:-s/^\$//}" -e "${EDITS:-s/^\$//}" "$config" > "$2"
    "$bin" --config "$2" enroll --name kiosk "$root/tests/data/kiosk640.jpg" > /dev/null 2>&1 || true
}
