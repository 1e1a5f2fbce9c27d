#!/usr/bin/env bash
# Run ansible-test (sanity, units, ...) against this checkout of the aitbc.ops collection.
#
# Usage:  bash scripts/ansible-test.sh [COMMAND] [ANSIBLE-TEST ARGS...]
#   bash scripts/ansible-test.sh sanity                       # all sanity tests, Python 3.11
#   bash scripts/ansible-test.sh sanity --test pep8 --test pylint
#   bash scripts/ansible-test.sh units
#   ANSIBLE_TEST_PYTHON=all bash scripts/ansible-test.sh sanity   # compile/import on every Python found
# COMMAND defaults to "sanity".  Exit status is ansible-test's (non-zero if any test failed).
#
# Environment:
#   ANSIBLE_TEST_PYTHON  --python value added unless the args already choose one (default 3.11; "all" adds none)
#   ANSIBLE_TEST_WORK    scratch dir (default <checkout>/.work/ansible-test); kept between runs as a cache
#   ANSIBLE_TEST         ansible-test executable (default <checkout>/.venv/bin/ansible-test, else PATH)
#
# Why this wrapper:
# * ansible-test only works from <root>/ansible_collections/<namespace>/<name>.  The checkout is not such a
#   path, so the collection's files (git's tracked + untracked-but-not-ignored files, minus the collections/
#   symlink dir) are mirrored into <work>/ansible_collections/aitbc/ops.  ansible-test lists a collection's
#   files with git when it finds a .git dir at or above the collection root (else it walks the directory).
#   <work> lives inside this checkout, where the parent repo would answer "no files" (.work/ is ignored), so the
#   mirror gets its own git repo with everything staged: ansible-test then sees exactly the mirrored files.
# * ansible-test bootstraps pip into each venv it creates with get-pip.py downloaded from
#   ci-files.testing.ansible.com, which is unreachable here.  It first looks for a cached copy at
#   ~/.ansible/test/cache/get_pip_<ver>.py, so scripts/ansible_test_getpip.py (ensurepip in a subprocess, then
#   "pip install pip==<ver>") is installed there.  Nothing in site-packages is modified.
# * --venv: ansible-test runs itself from a venv it creates (kept in the mirror's tests/output/.tmp) and installs
#   the pinned requirements of each command there; sanity tests always get their own pinned venvs, cached in
#   ~/.ansible/test/venv.  Re-runs reuse both.  The project .venv is never modified.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$SCRIPT_DIR/.." && pwd)
WORK=${ANSIBLE_TEST_WORK:-$SRC/.work/ansible-test}
PY_WANTED=${ANSIBLE_TEST_PYTHON:-3.11}

if [[ -n "${ANSIBLE_TEST:-}" ]]; then
    ANSIBLE_TEST_BIN=$ANSIBLE_TEST
elif [[ -x "$SRC/.venv/bin/ansible-test" ]]; then
    ANSIBLE_TEST_BIN=$SRC/.venv/bin/ansible-test
else
    ANSIBLE_TEST_BIN=$(command -v ansible-test) || { echo "ansible-test: not found (no .venv, not on PATH)" >&2; exit 2; }
fi
# the interpreter ansible-test runs under (to ask ansible_test which pip version it bootstraps)
AT_PYTHON=$(head -n1 "$ANSIBLE_TEST_BIN" | sed -n 's/^#![[:space:]]*//p' | awk '{print $1}')
[[ -x "$AT_PYTHON" ]] || AT_PYTHON=python3

COMMAND=sanity
if [[ $# -gt 0 && $1 != -* ]]; then
    COMMAND=$1
    shift
fi

galaxy_field() { sed -n "s/^$1:[[:space:]]*\\([A-Za-z0-9_]*\\).*/\\1/p" "$SRC/galaxy.yml" | head -n1; }
NAMESPACE=$(galaxy_field namespace)
NAME=$(galaxy_field name)
[[ -n "$NAMESPACE" && -n "$NAME" ]] || { echo "cannot read namespace/name from $SRC/galaxy.yml" >&2; exit 2; }
DEST=$WORK/ansible_collections/$NAMESPACE/$NAME

log() { printf '[ansible-test.sh] %s\n' "$*" >&2; }

# --- 0. one run at a time ------------------------------------------------------------------------------
# Concurrent runs would wipe each other's mirror, and ansible-test has no locking around its shared sanity venv
# cache (~/.ansible/test/venv): two runs creating the same venv at once break each other's pip installs.
mkdir -p "$HOME/.ansible/test"
LOCK=$HOME/.ansible/test/ansible-test-sh.lock
exec 9>"$LOCK"
if ! flock -n 9; then
    log "another scripts/ansible-test.sh run holds $LOCK; waiting for it"
    flock 9
fi

# --- 1. local get-pip stand-in -------------------------------------------------------------------------
GETPIP_SRC=$SCRIPT_DIR/ansible_test_getpip.py
GETPIP_MARKER=ANSIBLE-TEST-LOCAL-GETPIP
CACHE_DIR=$HOME/.ansible/test/cache
# pip version(s) ansible-test pins per Python version (ansible_test._internal.python_requirements.get_venv_packages)
PIP_VERSIONS=$("$AT_PYTHON" - <<'EOF' 2>/dev/null || echo 24.2
import types
from ansible_test._internal.python_requirements import get_venv_packages
versions = {get_venv_packages(types.SimpleNamespace(version='3.%d' % minor))['pip'] for minor in range(6, 16)}
print(' '.join(sorted(versions)))
EOF
)
mkdir -p "$CACHE_DIR"
for pip_version in $PIP_VERSIONS; do
    cached=$CACHE_DIR/get_pip_${pip_version//./_}.py
    if [[ -e "$cached" ]] && ! grep -q "$GETPIP_MARKER" "$cached"; then
        continue  # a genuine get-pip.py someone downloaded: it works too (it installs pip from the index), keep it
    fi
    if ! cmp -s "$GETPIP_SRC" "$cached"; then
        cp "$GETPIP_SRC" "$cached.tmp.$$" && mv -f "$cached.tmp.$$" "$cached"
        log "installed local get-pip for pip $pip_version: $cached"
    fi
done

# --- 2. interpreters: skip broken pyenv shims ----------------------------------------------------------
# ansible-test finds pythonX.Y on PATH; pyenv shims exist for every installed version but only work for the
# selected one(s).  Put working interpreters first on PATH so other versions can be used (ANSIBLE_TEST_PYTHON=all).
mkdir -p "$WORK/bin"
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
for minor in 8 9 10 11 12 13 14; do
    exe=python3.$minor
    rm -f "$WORK/bin/$exe"
    if ! "$exe" -c '' >/dev/null 2>&1; then
        for cand in "$PYENV_ROOT"/versions/3."$minor".*/bin/"$exe"; do
            if [[ -x "$cand" ]] && "$cand" -c '' >/dev/null 2>&1; then
                ln -s "$cand" "$WORK/bin/$exe"
                break
            fi
        done
    fi
done
export PATH=$WORK/bin:$PATH

# --- 3. mirror the collection --------------------------------------------------------------------------
FILE_LIST=$WORK/files.list
# Not collection content: the opsrunner package, its tests and tooling. Sanity covers what ships in the collection.
# tests/unit holds the opsrunner unit tests too: of it only tests/unit/plugins (the ansible-test units layout) is
# mirrored, by the filter below.
NOT_COLLECTION=(collections opsrunner benchmarks scripts .ci tests/integration tests/conftest.py)
EXCLUDES=()
PRUNES=()
for path in "${NOT_COLLECTION[@]}"; do
    EXCLUDES+=(":(exclude)$path")
    PRUNES+=(-o -path "./$path")
done
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # same selection ansible-test itself makes in a git checkout: tracked + untracked-not-ignored, minus deleted
    comm -z -23 \
        <(git -C "$SRC" ls-files -z --cached --others --exclude-standard -- . "${EXCLUDES[@]}" | sort -zu) \
        <(git -C "$SRC" ls-files -z --deleted | sort -zu) > "$FILE_LIST"
else
    (cd "$SRC" && find . \( -path ./.git "${PRUNES[@]}" -o -path ./.venv -o -path ./.state -o -path ./.work \
        -o -path ./tests/output -o -name __pycache__ -o -name '*.egg-info' \) -prune -o \( -type f -o -type l \) -print0 |
        sed -z 's|^\./||') > "$FILE_LIST"
fi
# tests/unit/*: only tests/unit/plugins/ is collection content (run by `ansible-test units`), with the
# requirements.txt ansible-test installs for it (host-side libraries a probe needs: prometheus-client)
grep -zvP '^tests/unit/(?!plugins/|requirements\.txt$)' "$FILE_LIST" > "$FILE_LIST.tmp" || [[ $? -eq 1 ]]  # 1: nothing left
mv -f "$FILE_LIST.tmp" "$FILE_LIST"

mkdir -p "$DEST"
# wipe everything but the mirror's .git and tests/output (the latter holds the --venv controller venv)
find "$DEST" -mindepth 1 -maxdepth 1 ! -name .git ! -name tests -exec rm -rf {} +
if [[ -d "$DEST/tests" ]]; then
    find "$DEST/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
fi
tar -C "$SRC" --ignore-failed-read --null -T "$FILE_LIST" -cf - | tar -C "$DEST" -xpf -  # a file deleted meanwhile is skipped

if [[ ! -d "$DEST/.git" ]]; then
    git -C "$DEST" init -q
fi
printf '/tests/output/\n' > "$DEST/.git/info/exclude"
git -C "$DEST" add -A
log "mirrored $(tr -cd '\0' < "$FILE_LIST" | wc -c) files of $NAMESPACE.$NAME into $DEST"

# --- 4. run ansible-test -------------------------------------------------------------------------------
ARGS=("$COMMAND" --venv)
if [[ "$PY_WANTED" != all ]] && [[ " $* " != *" --python "* ]] && [[ " $* " != *" --python="* ]]; then
    ARGS+=(--python "$PY_WANTED")
fi
if [[ -t 1 ]] && [[ " $* " != *" --color"* ]]; then
    ARGS+=(--color yes)
fi
ARGS+=("$@")

# drop result files of earlier runs (tests/output/.tmp, which holds the --venv controller venv, is kept)
rm -rf "$DEST/tests/output/bot" "$DEST/tests/output/junit" "$DEST/tests/output/data"
LOG=$WORK/last-$COMMAND.log
log "cd $DEST && $ANSIBLE_TEST_BIN ${ARGS[*]}"
start=$SECONDS
set +e
(cd "$DEST" && exec 9>&- && "$ANSIBLE_TEST_BIN" "${ARGS[@]}") 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - start))

# --- 5. one-line summary -------------------------------------------------------------------------------
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$LOG")
if [[ "$COMMAND" == sanity ]]; then
    ran=$(grep -c '^Running sanity test' <<<"$plain" || true)
    skipped=$(grep -c '^WARNING: Skipping sanity test' <<<"$plain" || true)
    failed=$(awk '/^(ERROR|FATAL): The [0-9]+ sanity test\(s\) listed below/ {f=1; next}
                  f && /^(ERROR|FATAL|WARNING):/ {f=0} f && NF {print $1}' <<<"$plain" | sort -u | paste -sd, -)
    detail="$ran run, $skipped skipped${failed:+, failed: $failed}"
    if [[ $rc -ne 0 && -z "$failed" ]]; then
        last=$(grep '^Running sanity test' <<<"$plain" | tail -n1 | sed 's/^Running sanity test //')
        detail="$detail, aborted${last:+ in $last} (ansible-test error, see log)"
    fi
elif [[ "$COMMAND" == units ]]; then
    detail=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* =+$' <<<"$plain" | tail -n1 | tr -d '=' | sed 's/^ *//; s/ *$//' || true)
else
    detail=""
fi
if [[ $rc -eq 0 ]]; then status=PASS; else status="FAIL (rc=$rc)"; fi
echo "ansible-test $COMMAND: $status${detail:+ - $detail} [${elapsed}s, log: $LOG]"
exit "$rc"
