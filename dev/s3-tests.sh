#!/usr/bin/env bash
# Runs ceph's S3 conformance suite (github.com/ceph/s3-tests, boto3 + pytest) against a local
# cluster of this checkout, on the S3 features mkv.ts claims, and prints the figures per group of
# tests. The suite is never fetched nor vendored here: check it out yourself and pass its path.
#
#   git clone https://github.com/ceph/s3-tests /tmp/s3-tests
#   apt-get install python3-pytest python3-boto3 python3-munch python3-isodate python3-tz \
#       python3-dateutil python3-requests python3-pytest-timeout
#   dev/s3-tests.sh /tmp/s3-tests                     # the whole subset, about 10 minutes
#   dev/s3-tests.sh /tmp/s3-tests -k test_multipart   # further pytest arguments narrow it
#
# It starts three volumes and an index (on free ports, data in a temporary directory) with
# `--credentials` holding the suite's three access keys (main, alt and tenant, from its
# s3tests.conf.SAMPLE) and `--s3-port`, which the suite is pointed at; writes the suite's
# configuration; runs Debian's python3 -m pytest on the subset below; prints passed, failed and
# errored tests per group and overall, each failure's first line and the slowest tests; and stops
# every process it started, however it ends. Its results stay in the directory it prints
# (S3TESTS_OUT, a new temporary directory if unset): junit.xml, summary.txt, pytest.log and the
# cluster's logs.
#
# The subset: test_s3.py and test_headers.py (not IAM, STS, SNS nor S3 Select), less the tests
# of features mkv.ts answers 501 (ACLs, bucket policies, versioning, lifecycle, website,
# encryption, tagging, object lock, browser POST uploads, public-access blocks, CORS, logging,
# storage classes, torrents), chosen by the suite's markers, by words in test names and, for the
# few whose premise neither says, by name (TESTS_OUT); less the tests marked fails_on_aws (RGW's
# own behaviour, which AWS's S3 does not have). boto3 runs without awscrt (BOTO_DISABLE_CRT), as
# the suite is meant to: Debian's python3-awscrt refuses some of its requests before sending.
#
# Environment: S3TESTS_OUT (results directory), S3TESTS_TIMEOUT_S (per test, default 300),
# MKV_DENO (deno binary, default node_modules/.bin/deno of this checkout), S3TESTS_PYTHON (the
# python, default Debian's /usr/bin/python3, whose botocore 1.29 lacks newer parameters such as
# PutObject's IfMatch, and drops ListBuckets' MaxBuckets unsent) and S3TESTS_PYTHONPATH (its
# module path: for a python with a newer boto3, a directory of links to Debian's munch,
# isodate, pytz and pytest_timeout, each with its egg-info, lends it those).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly PYTHON="${S3TESTS_PYTHON:-/usr/bin/python3}"
if [[ -n "${S3TESTS_PYTHONPATH:-}" ]]; then export PYTHONPATH="$S3TESTS_PYTHONPATH"; fi
readonly DENO="${MKV_DENO:-$ROOT/node_modules/.bin/deno}"
readonly TIMEOUT_S="${S3TESTS_TIMEOUT_S:-300}"
readonly START_TIMEOUT_S=30
readonly STOP_TIMEOUT_S=10
readonly VOLUMES=3

# The suite's markers of features we do not claim, and of RGW's own behaviour.
readonly MARKERS_OUT=(
  fails_on_aws bucket_policy user_policy encryption sse_s3 bucket_encryption lifecycle
  lifecycle_expiration lifecycle_transition tagging object_lock versioning delete_marker
  object_ownership s3website s3website_routing_rules s3website_redirect_location bucket_logging
  bucket_logging_cleanup fails_without_logging_rollover cloud_transition cloud_restore
  target_by_bucket storage_class appendobject s3select sns iam_user iam_account iam_role
  iam_tenant iam_cross_account test_of_sts webidentity_test
)
# Words in test names for the same features, where the suite has no marker for them
# (`public` takes the public-access blocks and policy status, `access_bucket` the ACL matrix).
readonly NAMES_OUT=(
  acl policy version lifecycle website encryption sse tagging object_lock post_object
  public access_bucket cors torrent logging
)
# Tests of test_s3.py whose premise is a feature we do not claim, though neither marker nor name
# says so: canned ACLs that open a bucket to anonymous users or to another access key (and
# ?acl reads), buckets owned by one access key, CORS preflights, versioning turned on.
readonly TESTS_OUT=(
  test_bucket_list_objects_anonymous test_bucket_listv2_objects_anonymous
  test_bucket_list_return_data test_bucket_create_special_key_names test_expected_bucket_owner
  test_list_multipart_upload_owner test_object_anon_put_write_access test_object_raw_get
  test_object_raw_get_bucket_gone test_object_raw_get_object_gone
  test_object_delete_key_bucket_gone test_100_continue
  test_object_raw_get_x_amz_expires_not_expired test_object_raw_get_x_amz_expires_not_expired_tenant
  test_bucket_create_exists_nonowner test_object_copy_not_owned_bucket
  test_object_copy_not_owned_object_bucket
  test_put_current_object_if_match test_put_current_object_if_none_match
  test_put_object_current_if_match test_multipart_put_current_object_if_match
  test_multipart_put_current_object_if_none_match
)

usage() {
  echo "usage: dev/s3-tests.sh S3_TESTS_CHECKOUT [PYTEST_ARGS...]" >&2
  exit 2
}

die() {
  echo "s3-tests: $*" >&2
  exit 1
}

# A TCP port nobody listens on, below Linux's ephemeral range (as dev/cluster.ts's freePort).
free_port() {
  "$PYTHON" - <<'EOF'
import random, socket
for _ in range(100):
    port = random.randrange(10000, 32000)
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            continue
        print(port)
        break
else:
    raise SystemExit("no free port in 10000-32000 after 100 tries")
EOF
}

PIDS=()
DATA=""

stop_all() {
  local pid deadline
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "s3-tests: pid $pid did not stop in ${STOP_TIMEOUT_S}s; killing it (its nginx may stay)" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n "$DATA" ]]; then rm -rf "$DATA"; fi
}

# Starts a program of this checkout in the background, logging to $OUT/NAME.log.
start() {
  local name=$1
  shift
  "$DENO" run --cached-only -A --config "$ROOT/deno.json" "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
}

# Waits until the last started program says it serves.
wait_serving() {
  local name=$1 pid=${PIDS[-1]} deadline=$((SECONDS + START_TIMEOUT_S))
  until grep -qs "serving" "$OUT/$name.log"; do
    kill -0 "$pid" 2>/dev/null || die "$name exited while starting: $(tail -n 5 "$OUT/$name.log")"
    ((SECONDS < deadline)) || die "$name did not start in ${START_TIMEOUT_S}s: $(tail -n 5 "$OUT/$name.log")"
    sleep 0.2
  done
}

(($# >= 1)) || usage
SUITE="$(cd "$1" && pwd)" || die "no directory $1"
shift
# A -k of the caller narrows the subset (pytest keeps only the last -k it is given).
NARROW=""
PYTEST_ARGS=()
while (($# > 0)); do
  if [[ "$1" == "-k" && $# -ge 2 ]]; then
    NARROW=" and ($2)"
    shift 2
  else
    PYTEST_ARGS+=("$1")
    shift
  fi
done
[[ -f "$SUITE/s3tests/functional/test_s3.py" ]] || die "$SUITE is not a checkout of ceph's s3-tests"
[[ -x "$DENO" ]] || die "no deno at $DENO; run npm ci in $ROOT"
"$PYTHON" -c 'import pytest, boto3, botocore, munch, isodate, pytz, dateutil, requests' 2>/dev/null ||
  die "$PYTHON lacks the suite's modules; run: apt-get install python3-pytest python3-boto3 python3-munch python3-isodate python3-tz python3-dateutil python3-requests"
TIMEOUT_ARGS=()
if "$PYTHON" -c 'import pytest_timeout' 2>/dev/null; then
  TIMEOUT_ARGS=(--timeout "$TIMEOUT_S")
else
  echo "s3-tests: no python3-pytest-timeout: a test that hangs stops the run" >&2
fi

OUT="${S3TESTS_OUT:-$(mktemp -d /tmp/mkv-s3-tests.XXXXXX)}"
mkdir -p "$OUT"
DATA="$(mktemp -d "$OUT/data.XXXXXX")"
# nginx's workers (user nobody when root runs this) must reach the volumes' directories.
chmod 755 "$OUT" "$DATA"
trap stop_all EXIT
trap 'exit 130' INT TERM

# The suite's three access keys and secrets, as in its s3tests.conf.SAMPLE.
readonly MAIN_KEY=0555b35654ad1656d804 MAIN_SECRET='h7GhxuBLTrlhVUyxSPUKUV8r/2EI4ngqJxD7iBdBYLhwluN30JaT3Q=='
readonly ALT_KEY=NOPQRSTUVWXYZABCDEFG ALT_SECRET=nopqrstuvwxyzabcdefghijklmnabcdefghijklm
readonly TENANT_KEY=HIJKLMNOPQRSTUVWXYZA TENANT_SECRET=opqrstuvwxyzabcdefghijklmnopqrstuvwxyzab
(
  umask 077
  printf '%s %s all\n' "$MAIN_KEY" "$MAIN_SECRET" "$ALT_KEY" "$ALT_SECRET" \
    "$TENANT_KEY" "$TENANT_SECRET" >"$DATA/credentials"
)

VOLUME_ADDRS=()
for i in $(seq 1 "$VOLUMES"); do
  port="$(free_port)"
  start "volume$i" volume.ts --port "$port" --dir "$DATA/volume$i"
  wait_serving "volume$i"
  VOLUME_ADDRS+=("localhost:$port")
done
INDEX_PORT="$(free_port)"
S3_PORT="$(free_port)"
VOLUME_LIST="$(IFS=,; echo "${VOLUME_ADDRS[*]}")"
start index index.ts server --port "$INDEX_PORT" --s3-port "$S3_PORT" --db "$DATA/index" \
  --volumes "$VOLUME_LIST" --credentials "$DATA/credentials"
wait_serving index
echo "s3-tests: cluster up: index :$INDEX_PORT, S3 :$S3_PORT, volumes $VOLUME_LIST" >&2

# One region, no zonegroup: without an api_name the suite skips its LocationConstraint test.
# The IAM sections are read by the suite's setup whatever runs; their keys are not in the
# credentials, so the IAM cleanup it tries after each test is refused and ignored.
cat >"$OUT/s3tests.conf" <<EOF
[DEFAULT]
host = localhost
port = $S3_PORT
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = mkv-{random}-

[s3 main]
display_name = M. Tester
user_id = testid
email = tester@ceph.com
access_key = $MAIN_KEY
secret_key = $MAIN_SECRET

[s3 alt]
display_name = john.doe
email = john.doe@example.com
user_id = 56789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234
access_key = $ALT_KEY
secret_key = $ALT_SECRET

[s3 tenant]
display_name = testx\$tenanteduser
user_id = testx\$9876543210abcdef0123456789abcdef0123456789abcdef0123456789abcdef
access_key = $TENANT_KEY
secret_key = $TENANT_SECRET
email = tenanteduser@example.com
tenant = testx

[iam]
email = s3@example.com
user_id = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
access_key = ABCDEFGHIJKLMNOPQRST
secret_key = abcdefghijklmnopqrstuvwxyzabcdefghijklmn
display_name = youruseridhere

[iam root]
access_key = AAAAAAAAAAAAAAAAAAaa
secret_key = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
user_id = RGW11111111111111111
email = account1@ceph.com

[iam alt root]
access_key = BBBBBBBBBBBBBBBBBBbb
secret_key = bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
user_id = RGW22222222222222222
email = account2@ceph.com
EOF

MARK_EXPR="$(printf 'not %s and ' "${MARKERS_OUT[@]}")"
NAME_EXPR="$(printf 'not %s and ' "${NAMES_OUT[@]}")"
# pytest's --deselect takes prefixes (test_object_raw_get would take all test_object_raw_get_*):
# a plugin of a few lines leaves out exactly the tests named.
cat >"$OUT/mkv_tests_out.py" <<'PLUGIN'
import os


def pytest_collection_modifyitems(config, items):
    names = set(os.environ["MKV_TESTS_OUT"].split())
    out = [item for item in items if item.name in names]
    if out:
        config.hook.pytest_deselected(items=out)
        items[:] = [item for item in items if item.name not in names]
PLUGIN
set +e
(
  cd "$SUITE"
  S3TEST_CONF="$OUT/s3tests.conf" PYTHONDONTWRITEBYTECODE=1 BOTO_DISABLE_CRT=true \
    PYTHONPATH="$OUT${PYTHONPATH:+:$PYTHONPATH}" MKV_TESTS_OUT="${TESTS_OUT[*]}" \
    "$PYTHON" -m pytest -p mkv_tests_out -p no:cacheprovider -q -rN --tb=short "${TIMEOUT_ARGS[@]}" \
    --junitxml "$OUT/junit.xml" -o junit_family=xunit1 \
    -m "${MARK_EXPR% and }" -k "(${NAME_EXPR% and })$NARROW" \
    s3tests/functional/test_s3.py s3tests/functional/test_headers.py "${PYTEST_ARGS[@]}"
) >"$OUT/pytest.log" 2>&1
set -e
[[ -f "$OUT/junit.xml" ]] || die "pytest wrote no results: $(tail -n 20 "$OUT/pytest.log")"

# Groups are tried in order; a test is counted in the first whose pattern its name matches.
"$PYTHON" - "$OUT/junit.xml" <<'EOF' | tee "$OUT/summary.txt"
import re, sys, xml.etree.ElementTree as ET

GROUPS = [
    ("SigV2 header auth (test_headers *_aws2)", r"_aws2$"),
    ("bad request headers (test_headers)", r"^test_(bucket|object)_create_(bad_|contentlength_none|date_and|amz_date)"),
    ("conditional requests (If-*)", r"if_?(none_?)?match|if(un)?modifiedsince"),
    ("checksums, GetObjectAttributes", r"checksum|cksum|object_attributes"),
    ("atomic reads/writes", r"^test_atomic_"),
    ("multipart uploads", r"multipart|^test_upload_part_copy"),
    ("CopyObject", r"^test_object_copy_"),
    ("ranged GETs", r"^test_ranged_"),
    ("DeleteObjects", r"^test_multi_object"),
    ("ListObjects v1", r"^test_bucket_list_"),
    ("ListObjectsV2", r"^test_bucket_listv2_|^test_basic_key_count"),
    ("ListBuckets", r"^test_(buckets_|list_buckets_)"),
    ("anonymous and presigned reads/writes", r"^test_object_(raw_|anon_|put_authenticated)"),
    ("objects: put, get, head, delete, metadata", r"^test_object_"),
    ("buckets: create, head, delete, names, location", r"^test_bucket"),
    ("Expect: 100-continue", r"^test_100_continue"),
    ("other", r""),
]

root = ET.parse(sys.argv[1]).getroot()
counts = {name: [0, 0, 0, 0] for name, _ in GROUPS}  # passed, failed, errored, skipped
failures, times = [], []
for case in root.iter("testcase"):
    name = case.get("name")
    group = next(g for g, pattern in GROUPS if re.search(pattern, re.sub(r"\[.*", "", name)))
    times.append((float(case.get("time") or 0), name))
    outcome = 0
    for i, tag in ((1, "failure"), (2, "error"), (3, "skipped")):
        element = case.find(tag)
        if element is not None:
            outcome = i
            reason = (element.get("message") or "").strip().splitlines()
            if i != 3:
                failures.append((group, name, tag, reason[0][:160] if reason else ""))
            break
    counts[group][outcome] += 1

total = [sum(c[i] for c in counts.values()) for i in range(4)]
run = sum(total) - total[3]
print(f"{'group':50} {'pass':>5} {'fail':>5} {'error':>5} {'skip':>5}")
for name, _ in GROUPS:
    c = counts[name]
    if sum(c):
        print(f"{name:50} {c[0]:5} {c[1]:5} {c[2]:5} {c[3]:5}")
print(f"{'total':50} {total[0]:5} {total[1]:5} {total[2]:5} {total[3]:5}")
percent = 100 * total[0] / run if run else 0
print(f"passed {total[0]} of {run} run ({percent:.1f} %), {total[3]} skipped")
print("\nfailures and errors:")
for group, name, tag, reason in sorted(failures):
    print(f"  [{group}] {name} ({tag}): {reason}")
print("\nslowest:")
for seconds, name in sorted(times, reverse=True)[:10]:
    print(f"  {seconds:7.1f}s {name}")
EOF
echo "s3-tests: results in $OUT (summary.txt, junit.xml, pytest.log, cluster logs)" >&2
