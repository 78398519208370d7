# Shared by scripts/test, scripts/demo and scripts/bench: install what is missing, once.
# Each step checks first, so a second run installs nothing.

source "$(dirname "${BASH_SOURCE[0]}")/kafka.sh"
TANSU_VERSION=0.6.0
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }

# Debian packages: stunnel (TLS in front of the test broker), openssl (test certificates),
# and what librdkafka's build needs.
ensure_system_packages() {
    local missing=()
    for pkg in libssl-dev zlib1g-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    # Commands may come from elsewhere (pyenv's python3, say): only their absence counts.
    local cmd
    for cmd in stunnel4:stunnel4 openssl:openssl pkg-config:pkg-config make:make gcc:gcc g++:g++ \
               python3:python3 python3-pip:pip3; do
        command -v "${cmd#*:}" >/dev/null 2>&1 || missing+=("${cmd%%:*}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# tansu, the Kafka-protocol broker the tests and the demo run (about 11 minutes to build
# on 2 cores the first time; cached in ~/.cargo/bin afterwards).
ensure_tansu() {
    if [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ]; then return; fi
    if cargo install --list 2>/dev/null | grep -q "^tansu v${TANSU_VERSION}:"; then return; fi
    log "building tansu ${TANSU_VERSION} (once; about 11 minutes on 2 cores)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql,postgres
}

ensure_nextest() {
    if cargo nextest --version >/dev/null 2>&1; then return; fi
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
}

# Python confluent-kafka and fastavro: the independent client of the interop tests.
ensure_python_deps() {
    local req="integration-tests/python/requirements.txt"
    if python3 - "$req" <<'PY' 2>/dev/null; then return; fi
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, wanted = line.split("==")
    name = name.split("[")[0]
    if version(name) != wanted:
        sys.exit(1)
import confluent_kafka.schema_registry.avro  # the extras are there too
PY
    log "installing Python packages from $req"
    python3 -m pip install -q --disable-pip-version-check -r "$req"
}

# A Compose implementation to validate docker-compose.yml with (no Docker engine needed):
# the docker compose plugin if present, else Debian's docker-compose.
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        if ! command -v docker-compose >/dev/null 2>&1; then
            log "installing docker-compose (Debian) to validate docker-compose.yml"
            local sudo=""
            [ "$(id -u)" -eq 0 ] || sudo="sudo"
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker-compose >/dev/null
        fi
        docker-compose "$@"
    fi
}

# PostgreSQL for the capture-loader tests: the machine's service (started if it is down).
ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
    log "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
    log "PostgreSQL is not reachable on 127.0.0.1:5432: the capture-loader's PostgreSQL test will fail in CI"
}

# Azurite, Microsoft's storage emulator (npm), for the capture-loader's Blob Storage tests;
# installed under ~/.cache, where the tests look for it.
AZURITE_VERSION=3.37.0
ensure_azurite() {
    local dir="${XDG_CACHE_HOME:-$HOME/.cache}/eventhubs-kafka/azurite"
    if [ -x "$dir/node_modules/.bin/azurite-blob" ] \
        && grep -q "\"version\": \"$AZURITE_VERSION\"" "$dir/node_modules/azurite/package.json" 2>/dev/null; then
        return
    fi
    if ! command -v npm >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        log "installing Node.js and npm (Debian) for Azurite"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
    fi
    log "installing azurite $AZURITE_VERSION (npm) into $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund "azurite@$AZURITE_VERSION")
}
