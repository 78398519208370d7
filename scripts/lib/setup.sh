# Shared by scripts/test, scripts/demo and scripts/bench: install what is missing, once.
# Each step checks first, so a second run installs nothing.

source "$(dirname "${BASH_SOURCE[0]}")/kafka.sh"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }

# Fail early, with the figures, when the disk holding the project has less than $1 GB free.
check_free_disk() {
    local need_gb=$1 free_kb
    free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
    log "free disk: $((free_kb / 1024 / 1024)) GB (need about ${need_gb} GB)"
    if [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
        log "not enough free disk for a build and test run; free some (cargo clean, old clones) and retry"
        exit 1
    fi
}

# Debian packages: openssl (test certificates), what librdkafka's build needs, Python.
ensure_system_packages() {
    local missing=()
    for pkg in libssl-dev zlib1g-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    # Commands may come from elsewhere (pyenv's python3, say): only their absence counts.
    local cmd
    for cmd in openssl:openssl pkg-config:pkg-config make:make gcc:gcc g++:g++ \
               python3:python3 python3-pip:pip3; do
        command -v "${cmd#*:}" >/dev/null 2>&1 || missing+=("${cmd%%:*}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        _apt_install "${missing[@]}"
    fi
}

# The run's shared Apache Kafka for the tests (test-support finds it through
# EHK_TEST_KAFKA_DIR), stopped when the calling script exits.
start_test_kafka() {
    export EHK_TEST_KAFKA_DIR="${EHK_TEST_KAFKA_DIR:-$PWD/target/test-kafka}"
    bash scripts/kafka ensure "$EHK_TEST_KAFKA_DIR"
    trap 'bash scripts/kafka stop "$EHK_TEST_KAFKA_DIR" || true' EXIT
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
            _apt_install docker-compose
        fi
        docker-compose "$@"
    fi
}

# PostgreSQL for the capture-loader tests and bench-loader: Debian's server, installed when
# missing, its cluster started, and a role of the tests' own (local-development credentials,
# like docker-compose's; loopback only) that may create the per-test databases.
PG_TEST_ROLE=eventhubs_test
export LOADER_TEST_POSTGRES="${LOADER_TEST_POSTGRES:-postgres://$PG_TEST_ROLE:$PG_TEST_ROLE@127.0.0.1:5432/$PG_TEST_ROLE}"
ensure_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        log "installing PostgreSQL (Debian)"
        # = apt-get install postgresql postgresql-client, after one apt-get update
        _apt_install postgresql postgresql-client
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        log "starting PostgreSQL"
        local version
        version=$(ls /etc/postgresql | sort -V | tail -1)
        [ -d "/etc/postgresql/$version/main" ] || pg_createcluster "$version" main >/dev/null
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        local _
        for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
        pg_isready -q -h 127.0.0.1 -p 5432 || { log "PostgreSQL did not start on 127.0.0.1:5432"; return 1; }
    fi
    local as_postgres=(psql -qAt)
    [ "$(id -un)" = postgres ] || as_postgres=(runuser -u postgres -- psql -qAt)
    if [ "$("${as_postgres[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_TEST_ROLE'")" != 1 ]; then
        log "creating the PostgreSQL role and database $PG_TEST_ROLE for the tests"
        "${as_postgres[@]}" -c "CREATE ROLE $PG_TEST_ROLE LOGIN CREATEDB PASSWORD '$PG_TEST_ROLE'"
    fi
    if [ "$("${as_postgres[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_TEST_ROLE'")" != 1 ]; then
        "${as_postgres[@]}" -c "CREATE DATABASE $PG_TEST_ROLE OWNER $PG_TEST_ROLE"
    fi
}

# Debian's Chromium, for the report test (headless: a DOM dump, a screenshot, a net log).
ensure_chromium() {
    [ -x /usr/bin/chromium ] && return
    log "installing Chromium (Debian) for the report test"
    _apt_install chromium
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
        log "installing Node.js and npm (Debian) for Azurite"
        _apt_install nodejs npm
    fi
    log "installing azurite $AZURITE_VERSION (npm) into $dir"
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund "azurite@$AZURITE_VERSION")
}
