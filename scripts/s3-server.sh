#!/usr/bin/env bash
# An S3-compatible server for the tests of attachment storage: s3s-fs (crates.io), which checks
# SigV4 signatures and does multipart uploads and ranged GETs, storing objects as files.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage:
  eval "$(scripts/s3-server.sh)"   install s3s-fs if missing, start it (unless it answers
                                   already), create the bucket, print the variables to export
  scripts/s3-server.sh stop        stop the server this script started

Prints, for `eval`: PARLEY_TEST_S3_URL (s3://parley-test?endpoint=http://127.0.0.1:9000) and the
fixed test credentials AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. Everything else it
says goes to stderr. The first install builds s3s-fs from source (about 6 minutes on 2 cores).

  PARLEY_S3_PORT   the port on 127.0.0.1 (default 9000)
  PARLEY_S3_DIR    where the data, the log and the pid go (default /tmp/parley-s3); the data is
                   wiped whenever a new server starts
EOF
}

# The last version that builds with Rust 1.95 (0.15 on need 1.96); --locked keeps the build the
# one that was tried.
VERSION=0.14.1
PORT=${PARLEY_S3_PORT:-9000}
DIR=${PARLEY_S3_DIR:-/tmp/parley-s3}
BUCKET=parley-test
ACCESS_KEY=parley-test
SECRET_KEY=parley-test-secret-key
REGION=us-east-1
ENDPOINT=http://127.0.0.1:$PORT

say() { echo "s3-server: $*" >&2; }

stop() {
  if [ -f "$DIR/pid" ] && kill "$(cat "$DIR/pid")" 2>/dev/null; then
    say "stopped pid $(cat "$DIR/pid")"
  fi
  rm -f "$DIR/pid"
}

# The HTTP status of a request signed with the test credentials (000: no answer). curl 7.88
# signs x-amz-content-sha256 only when it is given, and s3s requires it.
signed() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 --aws-sigv4 "aws:amz:$REGION:s3" \
    --user "$ACCESS_KEY:$SECRET_KEY" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" || true
}

case ${1:-} in
  stop) stop; exit 0 ;;
  -h|--help|help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

if ! s3s-fs --version 2>/dev/null | grep -qF "$VERSION"; then
  say "installing s3s-fs $VERSION"
  cargo install "s3s-fs@$VERSION" --features binary --locked -j 2 --quiet >&2
fi

status=$(signed -I "$ENDPOINT/$BUCKET")
case $status in
  000)
    stop
    rm -rf "$DIR/data"
    mkdir -p "$DIR/data"
    # Its output goes to the log: an inherited stdout would hold `eval "$(...)"` open for good.
    setsid s3s-fs --host 127.0.0.1 --port "$PORT" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" \
      "$DIR/data" >"$DIR/server.log" 2>&1 </dev/null &
    echo $! >"$DIR/pid"
    say "started s3s-fs on $ENDPOINT (pid $!, log $DIR/server.log)"
    for _ in $(seq 100); do
      status=$(signed -I "$ENDPOINT/$BUCKET")
      [ "$status" != 000 ] && break
      kill -0 "$(cat "$DIR/pid")" 2>/dev/null || { say "s3s-fs exited:"; cat "$DIR/server.log" >&2; exit 1; }
      sleep 0.1
    done
    ;;
  200|404) say "s3s-fs answers already on $ENDPOINT" ;;
  *) say "something else answers on $ENDPOINT (HEAD /$BUCKET: $status): stop it or set PARLEY_S3_PORT"; exit 1 ;;
esac

case $status in
  200) ;;
  404)
    created=$(signed -X PUT "$ENDPOINT/$BUCKET")
    [ "$created" = 200 ] || { say "creating the bucket $BUCKET answered $created"; exit 1; }
    say "created the bucket $BUCKET"
    ;;
  *) say "s3s-fs did not answer on $ENDPOINT (HEAD /$BUCKET: $status)"; exit 1 ;;
esac

cat <<EOF
export PARLEY_TEST_S3_URL='s3://$BUCKET?endpoint=$ENDPOINT'
export AWS_ACCESS_KEY_ID='$ACCESS_KEY'
export AWS_SECRET_ACCESS_KEY='$SECRET_KEY'
export AWS_REGION='$REGION'
EOF
